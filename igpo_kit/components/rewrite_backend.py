"""Registered rewrite_backend components: ``from igpo_kit.components import rewrite_backend; rewrite_backend.NAME(...)`` (gin: ``@rewrite_backend.NAME()``)."""

from igpo_kit.registry import facade_getattr

__getattr__ = facade_getattr("rewrite_backend")
