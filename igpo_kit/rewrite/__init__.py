"""Trace rewriting for Length-Aligned SFT (paper Sec. 3.2, App. D, App. I).

:func:`rewrite_traces` (the job), backends :func:`transformers_causal` and :func:`openai_http` (registry kind
``rewrite_backend``), and the App. I prompt (:func:`rewrite_prompt`). Names load lazily (no torch on import).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "rewrite_traces": "igpo_kit.rewrite.job",
    "RewriteReport": "igpo_kit.rewrite.job",
    "check_format": "igpo_kit.rewrite.job",
    "answers_match": "igpo_kit.rewrite.job",
    "transformers_causal": "igpo_kit.rewrite.backends",
    "openai_http": "igpo_kit.rewrite.backends",
    "RewriteBackendError": "igpo_kit.rewrite.backends",
    "rewrite_prompt": "igpo_kit.rewrite.prompt",
    "target_words": "igpo_kit.rewrite.prompt",
    "REWRITE_TEMPLATE": "igpo_kit.rewrite.prompt",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'igpo_kit.rewrite' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
