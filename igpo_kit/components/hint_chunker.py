"""Registered hint_chunker components: ``from igpo_kit.components import hint_chunker; hint_chunker.NAME(...)`` (gin: ``@hint_chunker.NAME()``)."""

from igpo_kit.registry import facade_getattr

__getattr__ = facade_getattr("hint_chunker")
