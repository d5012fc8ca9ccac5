"""Native LLaDA (LLaDA-8B-Instruct, Nie et al. 2025): a Llama-style transformer with full bidirectional attention.

Loads a hub checkpoint folder as it is (``config.json`` with ``model_type = "llada"``, safetensors with the
upstream parameter names ``model.transformer.blocks.{i}.q_proj.weight`` ...), with no remote code and no
conversion; :func:`register` makes ``AutoConfig`` / ``AutoModel`` resolve ``llada`` to these classes in-process.

Architecture (``block_type = "llama"``): ``h = x + attn_out(SDPA(rope(q_proj(n)), rope(k_proj(n)), v_proj(n)))``
with ``n = attn_norm(x)``; ``x' = h + ff_out(act(ff_proj(m)) * up_proj(m))`` with ``m = ff_norm(h)``; RMSNorm
(``rms_norm_eps``), rotary embeddings with ``rope_theta`` (500000) applied in float32 when
``rope_full_precision``; ``ln_f`` then ``ff_out`` (untied unless ``weight_tying``). The upstream options LLaDA
checkpoints do not use (ALiBi, q/k layer norms, block groups, sequential blocks, non-RMS norms) are refused with
a message pointing at ``implementation='remote'``.

Key/value cache for block decoding: see :mod:`igpo_kit.models.kv_cache`.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig

from igpo_kit.models.native import AttentionContext, NativeDiffusionModel, RMSNorm, attend

ACTIVATIONS = {"silu": nn.SiLU, "gelu": nn.GELU, "relu": nn.ReLU}
# upstream settings the native class implements, with the only values it accepts
SUPPORTED = {"block_type": ("llama",), "layer_norm_type": ("rms",), "alibi": (False,), "rope": (True,),
             "attention_layer_norm": (False,), "block_group_size": (1,), "input_emb_norm": (False,),
             "activation_type": tuple(ACTIVATIONS), "multi_query_attention": (None, False)}


class LLaDAConfig(PretrainedConfig):
    """LLaDA's ``config.json``, every key kept as it is (so a saved folder reloads with the upstream code too).

    The attributes the native model reads have the upstream defaults (LLaDA-8B-Instruct's values in brackets):
    ``d_model`` [4096], ``n_heads`` [32], ``n_kv_heads`` [32], ``n_layers`` [32], ``mlp_hidden_size`` [12288],
    ``vocab_size`` / ``embedding_size`` [126464], ``max_sequence_length`` [4096], ``rope_theta`` [500000],
    ``rope_full_precision`` [True], ``rms_norm_eps`` [1e-5], ``weight_tying`` [False], ``mask_token_id`` [126336].
    """

    model_type = "llada"

    def __init__(
        self,
        d_model: int = 768,
        n_heads: int = 12,
        n_kv_heads: int | None = None,
        n_layers: int = 12,
        mlp_ratio: int = 4,
        mlp_hidden_size: int | None = None,
        activation_type: str = "swiglu",
        block_type: str = "sequential",
        vocab_size: int = 50257,
        embedding_size: int | None = 50304,
        max_sequence_length: int = 1024,
        rope: bool = False,
        rope_full_precision: bool = True,
        rope_theta: float = 10000.0,
        layer_norm_type: str = "default",
        rms_norm_eps: float = 1e-5,
        include_bias: bool = True,
        include_qkv_bias: bool = False,
        bias_for_layer_norm: bool | None = None,
        weight_tying: bool = True,
        scale_logits: bool = False,
        attention_dropout: float = 0.1,
        init_std: float = 0.02,
        use_cache: bool = False,
        **kwargs,
    ):
        self.d_model, self.n_heads, self.n_kv_heads, self.n_layers = d_model, n_heads, n_kv_heads, n_layers
        self.mlp_ratio, self.mlp_hidden_size = mlp_ratio, mlp_hidden_size
        self.activation_type, self.block_type = activation_type, block_type
        self.vocab_size, self.embedding_size, self.max_sequence_length = vocab_size, embedding_size, max_sequence_length
        self.rope, self.rope_full_precision, self.rope_theta = rope, rope_full_precision, rope_theta
        self.layer_norm_type, self.rms_norm_eps = layer_norm_type, rms_norm_eps
        self.include_bias, self.include_qkv_bias, self.bias_for_layer_norm = include_bias, include_qkv_bias, bias_for_layer_norm
        self.weight_tying, self.scale_logits = weight_tying, scale_logits
        self.attention_dropout, self.init_std, self.use_cache = attention_dropout, init_std, use_cache
        kwargs.setdefault("architectures", ["LLaDAModelLM"])
        kwargs.setdefault("tie_word_embeddings", weight_tying)
        super().__init__(**kwargs)

    @property
    def effective_n_kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def num_attention_heads(self) -> int:
        return self.n_heads

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layers

    @property
    def hidden_size(self) -> int:
        return self.d_model

    @property
    def num_key_value_heads(self) -> int:
        return self.effective_n_kv_heads

    @property
    def intermediate_size(self) -> int:
        return self.mlp_hidden_size or self.mlp_ratio * self.d_model

    @property
    def max_position_embeddings(self) -> int:
        return self.max_sequence_length

    def unsupported(self) -> list[str]:
        """Settings of this config the native class does not implement (``key=value``), empty if none."""
        bad = [f"{k}={getattr(self, k, None)!r}" for k, ok in SUPPORTED.items() if getattr(self, k, ok[0]) not in ok]
        if self.layer_norm_type == "rms" and (self.bias_for_layer_norm or
                                                (self.bias_for_layer_norm is None and self.include_bias)):
            bad.append("bias_for_layer_norm=True")
        return bad


class LLaDALlamaBlock(nn.Module):
    """One LLaDA ``llama`` block; parameter names as upstream (``q_proj``, ``attn_out``, ``ff_proj``, ``up_proj``...)."""

    def __init__(self, config: LLaDAConfig):
        super().__init__()
        d, head_dim = config.d_model, config.d_model // config.n_heads
        kv = config.effective_n_kv_heads * head_dim
        hidden = config.mlp_hidden_size or config.mlp_ratio * d
        bias, qkv_bias = config.include_bias, config.include_bias or config.include_qkv_bias
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.effective_n_kv_heads, head_dim
        self.rope_full_precision = config.rope_full_precision
        self.attn_norm = RMSNorm(d, config.rms_norm_eps)
        self.ff_norm = RMSNorm(d, config.rms_norm_eps)
        self.q_proj = nn.Linear(d, d, bias=qkv_bias)
        self.k_proj = nn.Linear(d, kv, bias=qkv_bias)
        self.v_proj = nn.Linear(d, kv, bias=qkv_bias)
        self.attn_out = nn.Linear(d, d, bias=bias)
        self.ff_proj = nn.Linear(d, hidden, bias=bias)
        self.up_proj = nn.Linear(d, hidden, bias=bias)
        self.ff_out = nn.Linear(hidden, d, bias=bias)
        self.act = ACTIVATIONS[config.activation_type]()

    def forward(self, x: torch.Tensor, ctx: AttentionContext, layer: int) -> torch.Tensor:
        """``x`` ``[B, W, C]`` -> ``[B, W, C]``."""
        b, w, _ = x.shape
        n = self.attn_norm(x)
        q = self.q_proj(n).view(b, w, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(n).view(b, w, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(n).view(b, w, self.n_kv_heads, self.head_dim).transpose(1, 2)
        h = x + self.attn_out(attend(q, k, v, ctx, layer, self.rope_full_precision))
        m = self.ff_norm(h)
        return h + self.ff_out(self.act(self.ff_proj(m)) * self.up_proj(m))


class LLaDATrunk(nn.Module):
    """Holds ``transformer`` (``wte``, ``blocks``, ``ln_f``, ``ff_out``) so parameter names match upstream's
    ``model.transformer.*``."""

    def __init__(self, config: LLaDAConfig):
        super().__init__()
        vocab, d = config.embedding_size or config.vocab_size, config.d_model
        parts = {"wte": nn.Embedding(vocab, d),
                 "blocks": nn.ModuleList(LLaDALlamaBlock(config) for _ in range(config.n_layers)),
                 "ln_f": RMSNorm(d, config.rms_norm_eps)}
        if not config.weight_tying:
            parts["ff_out"] = nn.Linear(d, vocab, bias=config.include_bias)
        self.transformer = nn.ModuleDict(parts)


class LLaDAModelLM(NativeDiffusionModel):
    """Native LLaDA mask predictor: ``forward(input_ids [B, T]).logits`` is ``[B, T, V]`` (see the base class)."""

    config_class = LLaDAConfig
    base_model_prefix = "model"
    _no_split_modules = ["LLaDALlamaBlock"]
    upstream_code = ("configuration_llada.py", "modeling_llada.py")

    def __init__(self, config: LLaDAConfig):
        super().__init__(config)
        if config.unsupported():
            raise ValueError(f"the native LLaDA class does not implement {', '.join(config.unsupported())}; "
                             "load this checkpoint with implementation='remote'")
        self.model = LLaDATrunk(config)
        self.head_dim = config.d_model // config.n_heads
        self.rope_theta, self.attention_dropout = config.rope_theta, config.attention_dropout
        self.max_positions = config.max_sequence_length
        self.gradient_checkpointing = False
        self.post_init()

    def blocks(self):
        return self.model.transformer.blocks

    def final_norm(self):
        return self.model.transformer.ln_f

    def get_input_embeddings(self):
        return self.model.transformer.wte

    def set_input_embeddings(self, value):
        self.model.transformer.wte = value

    def get_output_embeddings(self):
        t = self.model.transformer
        return t.wte if self.config.weight_tying else t.ff_out

    def set_output_embeddings(self, value):
        self.model.transformer["wte" if self.config.weight_tying else "ff_out"] = value

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        """LM head ``[B, W, C] -> [B, W, V]`` (the embedding matrix when ``weight_tying``; ``scale_logits``)."""
        if self.config.weight_tying:
            logits = torch.nn.functional.linear(hidden, self.model.transformer.wte.weight)
        else:
            logits = self.model.transformer.ff_out(hidden)
        return logits / self.config.d_model**0.5 if self.config.scale_logits else logits


def register() -> None:
    """Make ``AutoConfig`` / ``AutoModel`` / ``AutoModelForCausalLM`` resolve ``model_type = "llada"`` natively."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    AutoConfig.register("llada", LLaDAConfig, exist_ok=True)
    AutoModel.register(LLaDAConfig, LLaDAModelLM, exist_ok=True)
    AutoModelForCausalLM.register(LLaDAConfig, LLaDAModelLM, exist_ok=True)


register()
