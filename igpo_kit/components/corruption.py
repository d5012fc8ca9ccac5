"""Registered corruption components: ``from igpo_kit.components import corruption; corruption.NAME(...)`` (gin: ``@corruption.NAME()``)."""

from igpo_kit.registry import facade_getattr

__getattr__ = facade_getattr("corruption")
