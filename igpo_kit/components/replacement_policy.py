"""Registered replacement_policy components: ``from igpo_kit.components import replacement_policy; replacement_policy.NAME(...)`` (gin: ``@replacement_policy.NAME()``)."""

from igpo_kit.registry import facade_getattr

__getattr__ = facade_getattr("replacement_policy")
