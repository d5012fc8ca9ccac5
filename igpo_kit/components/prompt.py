"""Registered prompt components: ``from igpo_kit.components import prompt; prompt.NAME(...)`` (gin: ``@prompt.NAME()``)."""

from igpo_kit.registry import facade_getattr

__getattr__ = facade_getattr("prompt")
