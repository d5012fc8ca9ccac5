"""igpo-kit: Inpainting-Guided Policy Optimization (IGPO) for masked diffusion LLMs.

Importing the package is cheap: no torch, no transformers. Heavy modules are imported where used.
"""

import importlib.util  # noqa: F401  gin-config 0.5.0 needs importlib.util loaded on Python 3.11

__version__ = "0.1.0"

KINDS = (
    "model",
    "dataset",
    "prompt",
    "sampler",
    "hint_chunker",
    "replacement_policy",
    "entropy_filter",
    "advantage_estimator",
    "grader",
    "logprob_estimator",
    "loss",
    "corruption",
    "rewrite_backend",
)


def register(kind: str, name: str | None = None):
    """Decorator that registers a user component: ``@igpo_kit.register("grader", "my_grader")``."""
    from igpo_kit.registry import register as _register

    return _register(kind, name)
