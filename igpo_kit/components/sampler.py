"""Registered sampler components: ``from igpo_kit.components import sampler; sampler.NAME(...)`` (gin: ``@sampler.NAME()``)."""

from igpo_kit.registry import facade_getattr

__getattr__ = facade_getattr("sampler")
