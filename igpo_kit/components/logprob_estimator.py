"""Registered logprob_estimator components: ``from igpo_kit.components import logprob_estimator; logprob_estimator.NAME(...)`` (gin: ``@logprob_estimator.NAME()``)."""

from igpo_kit.registry import facade_getattr

__getattr__ = facade_getattr("logprob_estimator")
