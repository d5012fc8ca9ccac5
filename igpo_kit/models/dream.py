"""Native Dream (Dream-v0-Instruct-7B, Ye et al. 2025): Qwen2.5's transformer with full bidirectional attention.

Loads a hub checkpoint folder as it is (``config.json`` with ``model_type = "Dream"``, safetensors with the upstream
names ``model.layers.{i}.self_attn.q_proj.weight`` ... ``lm_head.weight``), no remote code, no conversion;
:func:`register` makes ``AutoConfig`` / ``AutoModel`` resolve ``Dream`` to these classes in-process.

Architecture: Qwen2 blocks (RMSNorm ``rms_norm_eps``, grouped-query attention with ``num_key_value_heads`` (28 / 4
for 7B) and biases on q/k/v, SwiGLU MLP ``down(silu(gate(x)) * up(x))``), rotary embeddings with ``rope_theta``
(1e6) applied in the model's dtype, untied LM head.

**Shift**: Dream is initialised from an autoregressive model and keeps its convention: the logits at position
``i`` score the token at ``i + 1`` (upstream ``generation_utils.py`` shifts them by one). This class returns them
unshifted, exactly as the upstream code does; :class:`~igpo_kit.models.base.DiffusionLM` (``logits_shift = 1``)
undoes the shift once, so samplers, log-prob estimators and losses all see "logits at i score token i".

Key/value cache for block decoding: see :mod:`igpo_kit.models.kv_cache`.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig

from igpo_kit.models.native import AttentionContext, NativeDiffusionModel, RMSNorm, attend

DREAM_MASK_ID = 151666
DREAM_EOS_ID = 151643  # <|endoftext|>, also the padding
DREAM_EOT_ID = 151645  # <|im_end|>


class DreamConfig(PretrainedConfig):
    """Dream's ``config.json`` (upstream defaults; Dream-v0-Instruct-7B values in brackets): ``hidden_size``
    [3584], ``intermediate_size`` [18944], ``num_hidden_layers`` [28], ``num_attention_heads`` [28],
    ``num_key_value_heads`` [4], ``vocab_size`` [152064], ``max_position_embeddings`` [131072], ``rope_theta``
    [1e6], ``rms_norm_eps`` [1e-6], ``mask_token_id`` [151666], ``pad_token_id`` [151643]."""

    model_type = "Dream"

    def __init__(
        self,
        vocab_size: int = 151936,
        hidden_size: int = 4096,
        intermediate_size: int = 22016,
        num_hidden_layers: int = 32,
        num_attention_heads: int = 32,
        num_key_value_heads: int | None = 32,
        hidden_act: str = "silu",
        max_position_embeddings: int = 32768,
        initializer_range: float = 0.02,
        rms_norm_eps: float = 1e-6,
        use_cache: bool = False,
        tie_word_embeddings: bool = False,
        rope_theta: float = 10000.0,
        rope_scaling: dict | None = None,
        use_sliding_window: bool = False,
        sliding_window: int | None = 4096,
        max_window_layers: int = 28,
        attention_dropout: float = 0.0,
        mask_token_id: int = DREAM_MASK_ID,
        pad_token_id: int = DREAM_EOS_ID,
        **kwargs,
    ):
        self.vocab_size, self.hidden_size, self.intermediate_size = vocab_size, hidden_size, intermediate_size
        self.num_hidden_layers, self.num_attention_heads = num_hidden_layers, num_attention_heads
        self.num_key_value_heads = num_key_value_heads or num_attention_heads
        self.hidden_act, self.max_position_embeddings = hidden_act, max_position_embeddings
        self.initializer_range, self.rms_norm_eps, self.use_cache = initializer_range, rms_norm_eps, use_cache
        self.rope_theta, self.rope_scaling = rope_theta, rope_scaling
        self.use_sliding_window, self.max_window_layers = use_sliding_window, max_window_layers
        self.sliding_window = sliding_window if use_sliding_window else None
        self.attention_dropout = attention_dropout
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)
        self.mask_token_id, self.pad_token_id = mask_token_id, pad_token_id

    def unsupported(self) -> list[str]:
        """Settings the native class does not implement (``key=value``), empty if none."""
        bad = []
        scaling = self.rope_scaling or {}  # transformers 5 writes {'rope_type': 'default', 'rope_theta': ...} here
        if scaling.get("rope_type", scaling.get("type", "default")) != "default":
            bad.append(f"rope_scaling={self.rope_scaling!r}")
        if self.use_sliding_window:
            bad.append("use_sliding_window=True")
        if self.hidden_act != "silu":
            bad.append(f"hidden_act={self.hidden_act!r}")
        return bad


class DreamAttention(nn.Module):
    def __init__(self, config: DreamConfig):
        super().__init__()
        d, self.n_heads, self.n_kv_heads = config.hidden_size, config.num_attention_heads, config.num_key_value_heads
        self.head_dim = d // self.n_heads
        self.q_proj = nn.Linear(d, self.n_heads * self.head_dim, bias=True)
        self.k_proj = nn.Linear(d, self.n_kv_heads * self.head_dim, bias=True)
        self.v_proj = nn.Linear(d, self.n_kv_heads * self.head_dim, bias=True)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, d, bias=False)

    def forward(self, x: torch.Tensor, ctx: AttentionContext, layer: int) -> torch.Tensor:
        """``x`` ``[B, W, C]`` -> ``[B, W, C]``."""
        b, w, _ = x.shape
        q = self.q_proj(x).view(b, w, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, w, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, w, self.n_kv_heads, self.head_dim).transpose(1, 2)
        return self.o_proj(attend(q, k, v, ctx, layer, full_precision_rope=False))


class DreamMLP(nn.Module):
    def __init__(self, config: DreamConfig):
        super().__init__()
        d, hidden = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(d, hidden, bias=False)
        self.up_proj = nn.Linear(d, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class DreamDecoderLayer(nn.Module):
    def __init__(self, config: DreamConfig):
        super().__init__()
        self.self_attn = DreamAttention(config)
        self.mlp = DreamMLP(config)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x: torch.Tensor, ctx: AttentionContext, layer: int) -> torch.Tensor:
        """``x`` ``[B, W, C]`` -> ``[B, W, C]``."""
        h = x + self.self_attn(self.input_layernorm(x), ctx, layer)
        return h + self.mlp(self.post_attention_layernorm(h))


class DreamBaseModel(nn.Module):
    """``embed_tokens``, ``layers``, ``norm`` (upstream ``model.*`` names)."""

    def __init__(self, config: DreamConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DreamDecoderLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class DreamModel(NativeDiffusionModel):
    """Native Dream mask predictor: ``forward(input_ids [B, T]).logits`` ``[B, T, V]``, **shifted** (see module)."""

    config_class = DreamConfig
    base_model_prefix = "model"
    _no_split_modules = ["DreamDecoderLayer"]
    upstream_code = ("configuration_dream.py", "modeling_dream.py", "generation_utils.py")

    def __init__(self, config: DreamConfig):
        super().__init__(config)
        if config.unsupported():
            raise ValueError(f"the native Dream class does not implement {', '.join(config.unsupported())}; "
                             "load this checkpoint with implementation='remote'")
        self.model = DreamBaseModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.rope_theta, self.attention_dropout = config.rope_theta, config.attention_dropout
        self.max_positions = config.max_position_embeddings
        self.gradient_checkpointing = False
        self.post_init()

    def blocks(self):
        return self.model.layers

    def final_norm(self):
        return self.model.norm

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, value):
        self.lm_head = value


def register() -> None:
    """Make ``AutoConfig`` / ``AutoModel`` resolve ``model_type = "Dream"`` to the native classes."""
    from transformers import AutoConfig, AutoModel

    AutoConfig.register("Dream", DreamConfig, exist_ok=True)
    AutoModel.register(DreamConfig, DreamModel, exist_ok=True)


register()
