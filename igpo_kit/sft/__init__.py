"""Length-Aligned SFT (paper Sec. 3.2): masked-diffusion NELBO (Eq. 1), WSD schedule, sequence building, trainer.

Modules: :mod:`~igpo_kit.sft.nelbo` (``nelbo_loss``), :mod:`~igpo_kit.schedules` (``warmup_stable_decay``,
``linear_warmup_decay``, shared with RL), :mod:`~igpo_kit.sft.data` (``build_sft_data``), :mod:`~igpo_kit.sft.trainer`
(``train_sft``). Importing this package imports no torch; the names below load lazily.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "nelbo_loss": "igpo_kit.sft.nelbo",
    "forward_process": "igpo_kit.sft.nelbo",
    "skip_forward_process": "igpo_kit.sft.nelbo",
    "warmup_stable_decay": "igpo_kit.schedules",
    "linear_warmup_decay": "igpo_kit.schedules",
    "build_sft_data": "igpo_kit.sft.data",
    "assistant_text": "igpo_kit.sft.data",
    "LengthStats": "igpo_kit.sft.data",
    "SFTData": "igpo_kit.sft.data",
    "train_sft": "igpo_kit.sft.trainer",
    "make_sft_accelerator": "igpo_kit.sft.trainer",
    "SFTResult": "igpo_kit.sft.trainer",
    "export_model": "igpo_kit.sft.trainer",
    "load_weights": "igpo_kit.sft.trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'igpo_kit.sft' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
