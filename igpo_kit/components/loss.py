"""Registered loss components: ``from igpo_kit.components import loss; loss.NAME(...)`` (gin: ``@loss.NAME()``)."""

from igpo_kit.registry import facade_getattr

__getattr__ = facade_getattr("loss")
