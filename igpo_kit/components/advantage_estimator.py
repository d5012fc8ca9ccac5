"""Registered advantage_estimator components: ``from igpo_kit.components import advantage_estimator; advantage_estimator.NAME(...)`` (gin: ``@advantage_estimator.NAME()``)."""

from igpo_kit.registry import facade_getattr

__getattr__ = facade_getattr("advantage_estimator")
