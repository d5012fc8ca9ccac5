"""Registered model components: ``from igpo_kit.components import model; model.NAME(...)`` (gin: ``@model.NAME()``)."""

from igpo_kit.registry import facade_getattr

__getattr__ = facade_getattr("model")
