"""Loaders for real checkpoints: LLaDA-8B-Instruct (remote code) and any ``AutoModelForMaskedLM``.

``trust_remote_code`` is passed only when the recipe sets it; a checkpoint that needs it and does not have it
fails with a :class:`~igpo_kit.errors.ConfigError` that says which binding to set.
"""

from __future__ import annotations

import os

import torch

from igpo_kit.errors import ConfigError
from igpo_kit.models.base import DiffusionLM

LLADA_MASK_ID = 126336
LLADA_EOS_ID = 126081
LLADA_EOT_ID = 126348


def resolve_device(device: str) -> str:
    """``auto``: this process's GPU (``cuda:$LOCAL_RANK`` under torchrun / Slurm, so each rank of a node loads onto
    its own GPU), else ``cpu``; anything else is returned as given."""
    if device != "auto":
        return device
    if not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}"


def resolve_dtype(dtype: str) -> torch.dtype:
    """``"auto"`` -> bf16 on GPU, float32 on CPU; else a torch dtype name."""
    if dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    try:
        value = getattr(torch, dtype)
    except AttributeError:
        raise ConfigError(f"unknown dtype {dtype!r} (use auto, float32, bfloat16, float16)") from None
    if not isinstance(value, torch.dtype):
        raise ConfigError(f"unknown dtype {dtype!r} (use auto, float32, bfloat16, float16)")
    return value


def _load(loader, path: str, binding: str, **kwargs):
    try:
        return loader.from_pretrained(path, **kwargs)
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise ConfigError(
                f"{path} ships custom model code and needs trust_remote_code; set `{binding}.trust_remote_code = True` "
                "in the recipe (only for checkpoints you trust)"
            ) from None
        raise
    except OSError as exc:
        raise ConfigError(
            f"cannot load {path!r}: {str(exc).splitlines()[0]} (no hub access? pass a local directory as `{binding}.path`)"
        ) from None


def llada(
    path: str = "GSAI-ML/LLaDA-8B-Instruct",
    trust_remote_code: bool = False,
    dtype: str = "auto",
    device: str = "auto",
    mask_id: int = LLADA_MASK_ID,
    eos_id: int = LLADA_EOS_ID,
    eot_id: int = LLADA_EOT_ID,
) -> DiffusionLM:
    """LLaDA-8B-Instruct (or a kin) through ``transformers.AutoModel``.

    Args:
        path: hub id or local directory of the checkpoint.
        trust_remote_code: LLaDA's modelling code lives in the checkpoint; a recipe must opt in explicitly.
        dtype: ``auto`` (bf16 on GPU, float32 on CPU), ``bfloat16``, ``float32``.
        device: ``auto`` (cuda if available), ``cpu``, ``cuda``, ``cuda:1``...
        mask_id, eos_id, eot_id: LLaDA's special ids (spec sec. 0).
    """
    from transformers import AutoModel, AutoTokenizer

    network = _load(AutoModel, path, "model.llada", trust_remote_code=trust_remote_code, dtype=resolve_dtype(dtype))
    tok = _load(AutoTokenizer, path, "model.llada", trust_remote_code=trust_remote_code)
    dev = resolve_device(device)
    return DiffusionLM(
        network=network.to(dev).eval(), tokenizer=tok, mask_id=mask_id, eos_id=eos_id, eot_id=eot_id,
        pad_id=eos_id, logits_slice=False, name=f"llada:{path}",
    )


def masked_lm(
    path: str,
    trust_remote_code: bool = False,
    dtype: str = "auto",
    device: str = "auto",
    suppress_mask: bool = True,
) -> DiffusionLM:
    """Any ``AutoModelForMaskedLM`` (BERT, ModernBERT...) used as a small dLLM.

    The mask id is the tokenizer's ``mask_token_id``; EOS is its ``eos_token_id`` (else ``sep_token_id``).
    """
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    network = _load(AutoModelForMaskedLM, path, "model.masked_lm", trust_remote_code=trust_remote_code,
                    dtype=resolve_dtype(dtype))
    tok = _load(AutoTokenizer, path, "model.masked_lm", trust_remote_code=trust_remote_code)
    if tok.mask_token_id is None:
        raise ConfigError(f"{path}: the tokenizer has no mask token, so it cannot act as a masked diffusion LM")
    eos = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
    dev = resolve_device(device)
    return DiffusionLM(
        network=network.to(dev).eval(), tokenizer=tok, mask_id=tok.mask_token_id, eos_id=eos, eot_id=None,
        pad_id=tok.pad_token_id, logits_slice=False, suppress_mask=suppress_mask, name=f"masked_lm:{path}",
    )
