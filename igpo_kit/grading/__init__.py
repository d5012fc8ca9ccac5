"""Grading: answer extraction, graders (math_verify, gsm8k, official, format, xmlcount) and a timeout-safe pool.

Cheap to import (no math-verify/sympy until a math-verify grader is used). Public API::

    from igpo_kit.grading import graders, grade_many, GradingPool, GradeReport
    g = graders.math_verify()                    # or the registry: igpo_kit.components.grader.math_verify()
    g.score(completion, gold)                    # one answer, in-process
    grade_many(g, completions, golds, timeout_s=5.0, workers=2)   # many answers, bounded time per answer
"""

from igpo_kit.grading import extract, graders
from igpo_kit.grading.graders import GradingTimeout
from igpo_kit.grading.pool import GradeReport, GradingPool, grade_many

__all__ = ["extract", "graders", "GradingTimeout", "GradeReport", "GradingPool", "grade_many"]
