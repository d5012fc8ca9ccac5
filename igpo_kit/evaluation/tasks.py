"""One benchmark's evaluation settings (paper Table 3 row): data, prompt, sampler, grader, samples, metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EvalTask:
    """A benchmark to evaluate: ``num_samples`` generations per problem, scored by ``grader``."""

    name: str
    examples: Any
    sampler: Any
    grader: Any
    prompt: Any
    num_samples: int = 1
    pass_k: tuple[int, ...] = (1,)


def task(
    name: str = "task",
    dataset: Any = None,
    sampler: Any = None,
    grader: Any = None,
    prompt: Any = None,
    num_samples: int = 1,
    pass_k: tuple[int, ...] | list[int] = (1,),
) -> EvalTask:
    """Build an :class:`EvalTask` (gin: ``@gsm8k/tasks.task()`` with scoped bindings).

    Args:
        name: the benchmark's name in tables and file names.
        dataset: the examples (a registered dataset, e.g. ``@dataset.gsm8k()``).
        sampler: the decoding settings (e.g. ``@sampler.low_confidence()``).
        grader: the correctness grader (default: math_verify).
        prompt: the prompt template (default: llada_reasoning).
        num_samples: k of avg@k (1 for pass@1 at temperature 0).
        pass_k: the k's of pass@k to report (each <= num_samples).
    """
    if dataset is None or sampler is None:
        from igpo_kit.errors import ConfigError

        raise ConfigError(f"evaluation task {name!r} needs a dataset and a sampler")
    if grader is None:
        from igpo_kit.grading.graders import math_verify

        grader = math_verify()
    if prompt is None:
        from igpo_kit.data.prompts import llada_reasoning

        prompt = llada_reasoning()
    examples = list(dataset)
    if not examples:
        from igpo_kit.errors import ConfigError

        raise ConfigError(f"evaluation task {name!r}: its dataset is empty (0 examples); nothing to evaluate")
    return EvalTask(name, examples, sampler, grader, prompt, num_samples, tuple(pass_k))
