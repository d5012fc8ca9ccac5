"""Example plugin: registers grader ``example_exact`` (exact string match of the last number).

Install it (``pip install ./tests/plugin_example``) and a recipe can say ``grader = @grader.example_exact()``;
igpo-kit finds it through the ``igpo_kit.plugins`` entry point, no fork needed.
"""

import re
from dataclasses import dataclass

import igpo_kit


@dataclass(frozen=True)
class ExactLastNumber:
    """Scores 1.0 when the last number in the completion equals the gold string exactly."""

    name: str = "example_exact"
    correct_value: float = 1.0

    def score(self, completion: str, gold: str) -> float:
        nums = re.findall(r"-?\d+(?:\.\d+)?", completion)
        return self.correct_value if nums and nums[-1] == gold.strip() else 0.0


@igpo_kit.register("grader", "example_exact")
def example_exact(correct_value: float = 1.0) -> ExactLastNumber:
    """Exact match of the completion's last number with the gold answer (an example plugin grader)."""
    return ExactLastNumber(correct_value=correct_value)
