"""A tiny masked diffusion LM and tokenizer, built entirely offline (no hub access).

``architecture='gemma'`` (the default): a Llama-style decoder with full bidirectional attention (``GemmaForCausalLM`` with
``use_bidirectional_attention=True``: the LLaDA architecture in miniature); the tokenizer is character-level with
LLaDA's special tokens and LLaDA-8B-Instruct's chat template, so prompts look like the real ones.

``architecture='llada'``: the kit's native :class:`~igpo_kit.models.llada.LLaDAModelLM` at toy size with the same
tokenizer (the K/V cache interface of :mod:`igpo_kit.models.kv_cache`).

``architecture='dream'``: the kit's native :class:`~igpo_kit.models.dream.DreamModel` at toy size (grouped-query
attention with q/k/v biases, shifted logits undone by the adapter), with a character-level tokenizer carrying
Dream's special tokens and its (Qwen2.5) chat template.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch

from igpo_kit.models.base import DiffusionLM

SPECIALS = [
    "<|pad|>",
    "<|endoftext|>",  # EOS (LLaDA 126081); answers are right-padded with it
    "<|mdm_mask|>",  # the mask token M (LLaDA 126336)
    "<|startoftext|>",
    "<|unk|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]
CHARS = list(string.printable[:95]) + ["\n"]  # digits, letters, punctuation, space, newline
LLADA_CHAT_TEMPLATE = (
    "<|startoftext|>{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
DREAM_SPECIALS = ["<|endoftext|>", "<|mask|>", "<|im_start|>", "<|im_end|>", "<|beginoftext|>", "<|unk|>"]
DREAM_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}<|im_start|>system\n{{ messages[0]['content'] }}<|im_end|>\n"
    "{% else %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% for m in messages %}{% if not (m['role'] == 'system' and loop.first) %}"
    "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
ARCHITECTURES = ("gemma", "llada", "dream")
META_FILE = "igpo_kit_model.json"


def _char_tokenizer(specials: list[str], chat_template: str, **special_tokens):
    """Character-level ``PreTrainedTokenizerFast``: ``specials`` first (ids 0..), then one id per character of CHARS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(specials + [c for c in dict.fromkeys(CHARS)])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<|unk|>"))
    core.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<|unk|>", **special_tokens)
    tok.chat_template = chat_template
    return tok


def build_tokenizer():
    """Character-level ``PreTrainedTokenizerFast`` with LLaDA's special tokens and chat template."""
    return _char_tokenizer(
        SPECIALS, LLADA_CHAT_TEMPLATE, pad_token="<|pad|>", eos_token="<|endoftext|>", mask_token="<|mdm_mask|>",
        bos_token="<|startoftext|>", extra_special_tokens=["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
    )


def build_dream_tokenizer():
    """Character-level ``PreTrainedTokenizerFast`` with Dream's special tokens and chat template."""
    return _char_tokenizer(
        DREAM_SPECIALS, DREAM_CHAT_TEMPLATE, pad_token="<|endoftext|>", eos_token="<|endoftext|>",
        mask_token="<|mask|>", bos_token="<|beginoftext|>", extra_special_tokens=["<|im_start|>", "<|im_end|>"],
    )


def _wrap(network, tok, name: str) -> DiffusionLM:
    """The adapter for a tiny network: Gemma (4-D key mask), native LLaDA or native Dream (2-D mask, K/V cache;
    Dream's shifted logits)."""
    model_type = getattr(network.config, "model_type", None)
    native = model_type in ("llada", "Dream")
    eot = "<|im_end|>" if model_type == "Dream" else "<|eot_id|>"
    positions = network.config.max_sequence_length if model_type == "llada" else network.config.max_position_embeddings
    return DiffusionLM(
        network=network,
        tokenizer=tok,
        mask_id=tok.mask_token_id,
        eos_id=tok.eos_token_id,
        eot_id=tok.convert_tokens_to_ids(eot),
        pad_id=tok.pad_token_id,
        logits_slice=True,
        suppress_mask=True,
        padding_mask_4d=not native,
        logits_shift=1 if model_type == "Dream" else 0,
        kv_cache=native,
        max_positions=positions,
        name=name,
    )


def tiny(
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 256,
    max_positions: int = 2048,
    seed: int = 0,
    path: str | None = None,
    architecture: str = "gemma",
    vocab_size: int | None = None,
    embedding_std: float | None = None,
) -> DiffusionLM:
    """A tiny bidirectional dLLM, randomly initialised from ``seed`` or loaded from ``path`` (see :func:`save`).

    Args:
        hidden_size, num_layers, num_heads, intermediate_size, max_positions: architecture of a new model.
        seed: initialisation seed (a private generator; the global RNG is restored afterwards).
        path: a directory written by :func:`save` (e.g. an SFT checkpoint); overrides the architecture.
        architecture: ``gemma`` (bidirectional Gemma with LLaDA's tokens and chat template), ``llada`` (the native
            LLaDA class, same tokenizer; has the K/V cache) or ``dream`` (the native Dream class: GQA with
            ``num_heads // 2`` key/value heads, q/k/v biases, shifted logits; Dream's tokens and chat template).
        vocab_size: the model's vocabulary (>= the tokenizer's; None = the tokenizer's), e.g. 126464 to measure
            speed at LLaDA's LM-head size; ids past the tokenizer are never produced by it.
        embedding_std: standard deviation of the initial token embeddings (None: the architecture's own init, std
            0.02). Gemma multiplies its embeddings by sqrt(hidden_size) in the forward pass; the native LLaDA and
            Dream do not, so at toy width their residual stream starts ~8x smaller. ``0.16`` (= 0.02 * sqrt(64))
            gives the tiny native LLaDA Gemma's effective scale: the quickstart's SFT then reaches Gemma's held-out
            accuracy in the same steps (0.143 [0.113, 0.172] vs 0.109 [0.084, 0.135] at std 0.02 and 0.148 for
            Gemma, 1000 steps, 512 problems).
    """
    if path is not None:
        return _load_saved(Path(path))
    if architecture not in ARCHITECTURES:
        from igpo_kit.errors import ConfigError

        raise ConfigError(f"model.tiny.architecture = {architecture!r}: use one of {', '.join(ARCHITECTURES)}")
    if embedding_std is not None and embedding_std <= 0:
        from igpo_kit.errors import ConfigError

        raise ConfigError(f"model.tiny.embedding_std must be > 0, got {embedding_std}")
    tok = build_dream_tokenizer() if architecture == "dream" else build_tokenizer()
    vocab = max(vocab_size or 0, len(tok))
    config = BUILDERS[architecture](tok, vocab, hidden_size, num_layers, num_heads, intermediate_size, max_positions)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = _network_class(config)(config)
        if embedding_std is not None:
            with torch.no_grad():
                network.get_input_embeddings().weight.normal_(0.0, embedding_std)
    return _wrap(network.eval(), tok, name="tiny")


def _network_class(config):
    from transformers import GemmaForCausalLM

    from igpo_kit.models.dream import DreamModel
    from igpo_kit.models.llada import LLaDAModelLM

    return {"llada": LLaDAModelLM, "Dream": DreamModel}.get(config.model_type, GemmaForCausalLM)


def _load_saved(p: Path) -> DiffusionLM:
    from transformers import AutoTokenizer

    if not (p / "config.json").exists():
        from igpo_kit.errors import ConfigError

        raise ConfigError(f"model.tiny: no saved model at {p} (expected config.json written by save())")
    from transformers import AutoModelForCausalLM

    from igpo_kit.models.dream import DreamModel
    from igpo_kit.models.llada import LLaDAModelLM

    model_type = json.loads((p / "config.json").read_text()).get("model_type")
    cls = {"llada": LLaDAModelLM, "Dream": DreamModel}.get(model_type, AutoModelForCausalLM)
    network = cls.from_pretrained(p, dtype=torch.float32)
    return _wrap(network.eval(), AutoTokenizer.from_pretrained(p), name=f"tiny:{p}")


def _gemma_config(tok, vocab, hidden_size, num_layers, num_heads, intermediate_size, max_positions):
    from transformers import GemmaConfig

    return GemmaConfig(
        vocab_size=vocab, hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
        num_key_value_heads=num_heads, head_dim=hidden_size // num_heads, intermediate_size=intermediate_size,
        max_position_embeddings=max_positions, use_bidirectional_attention=True, tie_word_embeddings=False,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
        attn_implementation="sdpa",
    )


def _llada_config(tok, vocab, hidden_size, num_layers, num_heads, intermediate_size, max_positions):
    """LLaDA-8B-Instruct's architecture settings (llama blocks, RMSNorm, rope theta 500000 in float32, no biases,
    untied head) at the given sizes."""
    from igpo_kit.models.llada import LLaDAConfig

    return LLaDAConfig(
        d_model=hidden_size, n_heads=num_heads, n_kv_heads=num_heads, n_layers=num_layers,
        mlp_hidden_size=intermediate_size, activation_type="silu", block_type="llama", vocab_size=vocab,
        embedding_size=vocab, max_sequence_length=max_positions, rope=True, rope_full_precision=True,
        rope_theta=500000.0, layer_norm_type="rms", rms_norm_eps=1e-5, include_bias=False, weight_tying=False,
        attention_dropout=0.0, mask_token_id=tok.mask_token_id, pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
    )


def _dream_config(tok, vocab, hidden_size, num_layers, num_heads, intermediate_size, max_positions):
    """Dream-v0-Instruct-7B's architecture settings (GQA, q/k/v biases, rope theta 1e6) at the given sizes."""
    from igpo_kit.models.dream import DreamConfig

    return DreamConfig(
        vocab_size=vocab, hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=max(num_heads // 2, 1),
        max_position_embeddings=max_positions, rope_theta=1e6, mask_token_id=tok.mask_token_id,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
    )


BUILDERS = {"gemma": _gemma_config, "llada": _llada_config, "dream": _dream_config}


def save(model: DiffusionLM, path: str | Path) -> Path:
    """Write ``model`` as a ``save_pretrained`` directory that :func:`tiny` (``path=``) loads back."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    model.network.save_pretrained(p)
    model.tokenizer.save_pretrained(p)
    (p / META_FILE).write_text(json.dumps({"mask_id": model.mask_id, "eos_id": model.eos_id, "eot_id": model.eot_id}))
    return p
