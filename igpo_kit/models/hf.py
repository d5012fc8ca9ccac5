"""Loaders for real checkpoints: LLaDA and Dream (native classes by default, or their own remote code), and any
``AutoModelForMaskedLM``.

``implementation='native'`` (the default) loads a hub checkpoint folder into the kit's own classes
(:mod:`igpo_kit.models.llada`, :mod:`igpo_kit.models.dream`): same ``config.json``, same safetensors, no remote
code. ``implementation='remote'`` runs the checkpoint's own ``.py`` files (``trust_remote_code`` must then be set
explicitly), repaired for transformers 5 by :mod:`igpo_kit.models.remote`; it is the path for kin with no native
class (LLaDA-1.5 forks, LLaDA-MoE...). Bad input is a :class:`~igpo_kit.errors.ConfigError` (one line, exit 2).
"""

from __future__ import annotations

import os

import torch

from igpo_kit.errors import ConfigError
from igpo_kit.models.base import DiffusionLM
from igpo_kit.models.dream import DREAM_EOS_ID, DREAM_EOT_ID, DREAM_MASK_ID

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


IMPLEMENTATIONS = ("native", "remote")
# model_type -> (the loader to use, the native class)
NATIVE = {"llada": ("model.llada", "igpo_kit.models.llada:LLaDAModelLM"),
          "Dream": ("model.dream", "igpo_kit.models.dream:DreamModel")}


def read_config(path: str, binding: str) -> dict:
    """The checkpoint's raw ``config.json`` (a local folder or the hub cache)."""
    import json

    from transformers.utils import cached_file

    local = os.path.isabs(path) or path.startswith(".") or os.path.isdir(path)
    if local and not os.path.isfile(os.path.join(path, "config.json")):
        raise ConfigError(f"{binding}.path: no checkpoint folder at {path} (expected its config.json there)")
    try:
        file = cached_file(path, "config.json")
    except OSError as exc:
        raise ConfigError(f"cannot load {path!r}: {str(exc).splitlines()[0]} (no hub access? pass a local "
                          f"directory as `{binding}.path`)") from None
    return json.loads(open(file).read())


def max_positions(raw: dict) -> int | None:
    """The longest sequence a checkpoint's raw ``config.json`` allows: ``max_sequence_length`` (LLaDA), else
    ``max_position_embeddings`` (Dream, Qwen2, Llama, BERT...); None when it names neither."""
    keys = ("max_sequence_length", "max_position_embeddings")
    if raw.get("model_type") != "llada":
        keys = keys[::-1]
    for key in keys:
        value = raw.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def check_model_type(path: str, raw: dict, family: str, binding: str, implementation: str) -> None:
    """Refuse a checkpoint of another family, or an unknown ``model_type`` without ``implementation='remote'``."""
    if implementation not in IMPLEMENTATIONS:
        raise ConfigError(f"{binding}.implementation = {implementation!r}: use 'native' or 'remote'")
    model_type = raw.get("model_type")
    if model_type == family:
        return
    if model_type in NATIVE:
        raise ConfigError(f"{path} is a {model_type} checkpoint (model_type {model_type!r} in config.json): load it "
                          f"with {NATIVE[model_type][0]}(), not {binding}()")
    if implementation == "native":
        raise ConfigError(f"{path}: model_type {model_type!r} has no native class in igpo-kit (known: "
                          f"{', '.join(NATIVE)}); to run the checkpoint's own code set "
                          f"`{binding}.implementation = 'remote'` and `{binding}.trust_remote_code = True`")


def _first(keys, n: int = 3) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def load_native(family: str, path: str, dtype: torch.dtype, binding: str):
    """The native class of ``family`` loaded from ``path`` as it is; weights must match the config exactly."""
    import importlib

    module, name = NATIVE[family][1].split(":")
    cls = getattr(importlib.import_module(module), name)
    try:
        network, info = cls.from_pretrained(path, dtype=dtype, output_loading_info=True)
    except OSError as exc:
        raise ConfigError(f"cannot load {path!r}: {str(exc).splitlines()[0]}") from None
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        if "implementation='remote'" in first:
            raise ConfigError(f"{path}: {first} (`{binding}.implementation = 'remote'`)") from None
        raise ConfigError(f"weights of {path} do not match its config.json: {first}") from None
    problems = [f"missing {_first(info['missing_keys'])}" if info.get("missing_keys") else "",
                f"unexpected {_first(info['unexpected_keys'])}" if info.get("unexpected_keys") else "",
                f"wrong shape {_first(str(k[0]) if isinstance(k, tuple) else str(k) for k in info['mismatched_keys'])}"
                if info.get("mismatched_keys") else ""]
    problems = [p for p in problems if p]
    if problems:
        raise ConfigError(f"weights of {path} do not match its config.json ({family}): {'; '.join(problems)}")
    return network


def load_network(family: str, path: str, implementation: str, trust_remote_code: bool, dtype: str, binding: str):
    """``(network, raw config.json)`` of a LLaDA / Dream checkpoint through the chosen implementation."""
    raw = read_config(path, binding)
    check_model_type(path, raw, family, binding, implementation)
    if implementation == "native":
        return load_native(family, path, resolve_dtype(dtype), binding), raw
    if not trust_remote_code:
        raise ConfigError(f"{binding}.implementation = 'remote' runs the checkpoint's own code: also set "
                          f"`{binding}.trust_remote_code = True` (only for checkpoints you trust)")
    from igpo_kit.models.remote import load_remote

    try:
        return load_remote(path, dtype=resolve_dtype(dtype)), raw
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load {path!r} with its own code: {str(exc).strip().splitlines()[0]}") from None


def load_tokenizer(path: str, trust_remote_code: bool, binding: str):
    """The checkpoint's tokenizer. A remote-code tokenizer class (Dream's ``DreamTokenizer``, a copy of Qwen2's)
    is replaced by ``Qwen2Tokenizer`` on the same files when ``trust_remote_code`` is off."""
    from transformers import AutoTokenizer

    try:
        return _load(AutoTokenizer, path, binding, trust_remote_code=trust_remote_code)
    except ConfigError as exc:
        if trust_remote_code or "trust_remote_code" not in str(exc):
            raise
    from transformers import Qwen2Tokenizer

    return _load(Qwen2Tokenizer, path, binding)


def llada(
    path: str = "GSAI-ML/LLaDA-8B-Instruct",
    implementation: str = "native",
    trust_remote_code: bool = False,
    dtype: str = "auto",
    device: str = "auto",
    mask_id: int = LLADA_MASK_ID,
    eos_id: int = LLADA_EOS_ID,
    eot_id: int = LLADA_EOT_ID,
) -> DiffusionLM:
    """LLaDA-8B-Instruct (or a kin): the kit's native class, or the checkpoint's own code.

    Args:
        path: hub id or local directory of the checkpoint (``config.json`` + safetensors).
        implementation: ``native`` (the kit's :class:`~igpo_kit.models.llada.LLaDAModelLM`: SDPA with a real padding
            mask, logits of the active block only, gradient checkpointing, a K/V cache for block decoding) or
            ``remote`` (the checkpoint's ``modeling_llada.py``; for kin with no native class).
        trust_remote_code: only ``remote`` needs it; a recipe must opt in explicitly.
        dtype: ``auto`` (bf16 on GPU, float32 on CPU), ``bfloat16``, ``float32``.
        device: ``auto`` (this rank's GPU if any), ``cpu``, ``cuda``, ``cuda:1``...
        mask_id, eos_id, eot_id: LLaDA's special ids (spec sec. 0).
    """
    network, raw = load_network("llada", path, implementation, trust_remote_code, dtype, "model.llada")
    tok = load_tokenizer(path, trust_remote_code, "model.llada")
    native = implementation == "native"
    return DiffusionLM(
        network=network.to(resolve_device(device)).eval(), tokenizer=tok, mask_id=mask_id, eos_id=eos_id,
        eot_id=eot_id, pad_id=eos_id, logits_slice=native, kv_cache=native,
        max_positions=max_positions(raw), name=f"llada:{path}",
    )


def dream(
    path: str = "Dream-org/Dream-v0-Instruct-7B",
    implementation: str = "native",
    trust_remote_code: bool = False,
    dtype: str = "auto",
    device: str = "auto",
    mask_id: int = DREAM_MASK_ID,
    eos_id: int = DREAM_EOS_ID,
    eot_id: int = DREAM_EOT_ID,
) -> DiffusionLM:
    """Dream-v0-Instruct-7B (or a kin): the kit's native class, or the checkpoint's own code.

    Dream's logits are shifted (position ``i`` scores token ``i + 1``); the adapter undoes it (``logits_shift=1``),
    so every sampler, log-prob estimator and loss sees "logits at i score token i".

    Args:
        path: hub id or local directory of the checkpoint.
        implementation: ``native`` (:class:`~igpo_kit.models.dream.DreamModel`) or ``remote`` (its
            ``modeling_dream.py``, repaired for transformers 5).
        trust_remote_code: only ``remote`` needs it.
        dtype, device: as for :func:`llada`.
        mask_id, eos_id, eot_id: ``<|mask|>`` 151666, ``<|endoftext|>`` 151643 (also the padding), ``<|im_end|>``
            151645.
    """
    network, raw = load_network("Dream", path, implementation, trust_remote_code, dtype, "model.dream")
    tok = load_tokenizer(path, trust_remote_code, "model.dream")
    native = implementation == "native"
    return DiffusionLM(
        network=network.to(resolve_device(device)).eval(), tokenizer=tok, mask_id=mask_id, eos_id=eos_id,
        eot_id=eot_id, pad_id=eos_id, logits_slice=native, kv_cache=native, logits_shift=1,
        padding_mask_4d=not native, padding_position_ids=not native,
        max_positions=max_positions(raw), name=f"dream:{path}",
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
        pad_id=tok.pad_token_id, logits_slice=False, suppress_mask=suppress_mask,
        max_positions=max_positions(network.config.to_dict()), name=f"masked_lm:{path}",
    )
