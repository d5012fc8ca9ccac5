"""Registered dataset components: ``from igpo_kit.components import dataset; dataset.NAME(...)`` (gin: ``@dataset.NAME()``)."""

from igpo_kit.registry import facade_getattr

__getattr__ = facade_getattr("dataset")
