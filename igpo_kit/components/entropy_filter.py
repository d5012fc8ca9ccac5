"""Registered entropy_filter components: ``from igpo_kit.components import entropy_filter; entropy_filter.NAME(...)`` (gin: ``@entropy_filter.NAME()``)."""

from igpo_kit.registry import facade_getattr

__getattr__ = facade_getattr("entropy_filter")
