"""A tiny masked diffusion LM and tokenizer, built entirely offline (no hub access).

The network is a Llama-style decoder with full bidirectional attention (``GemmaForCausalLM`` with
``use_bidirectional_attention=True``: the LLaDA architecture in miniature). The tokenizer is character-level
with LLaDA's special tokens and LLaDA-8B-Instruct's chat template, so prompts look like the real ones.
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
META_FILE = "igpo_kit_model.json"


def build_tokenizer():
    """Character-level ``PreTrainedTokenizerFast`` with LLaDA's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + [c for c in dict.fromkeys(CHARS)])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<|unk|>"))
    core.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<|pad|>",
        eos_token="<|endoftext|>",
        mask_token="<|mdm_mask|>",
        bos_token="<|startoftext|>",
        unk_token="<|unk|>",
        extra_special_tokens=["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
    )
    tok.chat_template = LLADA_CHAT_TEMPLATE
    return tok


def _wrap(network, tok, name: str) -> DiffusionLM:
    return DiffusionLM(
        network=network,
        tokenizer=tok,
        mask_id=tok.mask_token_id,
        eos_id=tok.eos_token_id,
        eot_id=tok.convert_tokens_to_ids("<|eot_id|>"),
        pad_id=tok.pad_token_id,
        logits_slice=True,
        suppress_mask=True,
        padding_mask_4d=True,
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
) -> DiffusionLM:
    """A tiny bidirectional dLLM, randomly initialised from ``seed`` or loaded from ``path`` (see :func:`save`).

    Args:
        hidden_size, num_layers, num_heads, intermediate_size, max_positions: architecture of a new model.
        seed: initialisation seed (a private generator; the global RNG is restored afterwards).
        path: a directory written by :func:`save` (e.g. an SFT checkpoint); overrides the architecture.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, GemmaConfig, GemmaForCausalLM

    if path is not None:
        p = Path(path)
        if not (p / "config.json").exists():
            from igpo_kit.errors import ConfigError

            raise ConfigError(f"model.tiny: no saved model at {path} (expected config.json written by save())")
        network = AutoModelForCausalLM.from_pretrained(p, dtype=torch.float32)
        return _wrap(network.eval(), AutoTokenizer.from_pretrained(p), name=f"tiny:{p}")
    tok = build_tokenizer()
    config = GemmaConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        head_dim=hidden_size // num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_positions,
        use_bidirectional_attention=True,
        tie_word_embeddings=False,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
        attn_implementation="sdpa",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = GemmaForCausalLM(config)
    return _wrap(network.eval(), tok, name="tiny")


def save(model: DiffusionLM, path: str | Path) -> Path:
    """Write ``model`` as a ``save_pretrained`` directory that :func:`tiny` (``path=``) loads back."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    model.network.save_pretrained(p)
    model.tokenizer.save_pretrained(p)
    (p / META_FILE).write_text(json.dumps({"mask_id": model.mask_id, "eos_id": model.eos_id, "eot_id": model.eot_id}))
    return p
