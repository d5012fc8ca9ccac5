"""The unit of data every job consumes: one question with its gold answer (and optionally a reasoning trace)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["Example"]


@dataclass(frozen=True)
class Example:
    """One problem.

    id: stable id within the dataset, ``"<dataset>/<split>/<index in file order>"`` (e.g. ``"gsm8k/test/17"``).
    question: the problem text shown to the model.
    answer: the gold final answer as a string (what graders compare against).
    trace: ground-truth reasoning trace (source of IGPO hints and of SFT targets); None if the set has none.
    source: where it was read from (file path or Hub id).
    meta: other fields of the row (level, subject, url, type, ...), passed through untouched.
    """

    id: str
    question: str
    answer: str
    trace: str | None = None
    source: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
