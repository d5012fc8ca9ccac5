"""Registered grader components: ``from igpo_kit.components import grader; grader.NAME(...)`` (gin: ``@grader.NAME()``)."""

from igpo_kit.registry import facade_getattr

__getattr__ = facade_getattr("grader")
