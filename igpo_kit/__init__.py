"""igpo-kit: Inpainting-Guided Policy Optimization (IGPO) for masked diffusion LLMs.

Importing the package is cheap: no torch, no transformers. Heavy modules are imported where used.
"""

import importlib.util  # noqa: F401  gin-config 0.5.0 needs importlib.util loaded on Python 3.11

__version__ = "0.1.0"

from igpo_kit.registry import KINDS, register  # noqa: E402  the component kinds; ``@igpo_kit.register(kind, name)``

__all__ = ["KINDS", "__version__", "register"]
