"""The evaluation job's settings (:class:`EvalSettings`): one field and one docstring line each; imports no torch.

:func:`~igpo_kit.evaluation.job.run_eval` and the evaluation job (:func:`igpo_kit.entry.evaluate.evaluate`) take an
instance; recipes bind its fields one keyword each (``entry.evaluate.batch_size = 64``, see :mod:`igpo_kit.settings`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EvalSettings:
    """How the tasks are sampled and graded (the tasks themselves carry sampler, grader and ``num_samples``).

    Attributes:
        seed: seed of the sampling generator (each task starts from it).
        batch_size: rows per sampler call.
        grade_timeout_s: wall-clock bound per graded answer; a timed-out answer scores 0 and is counted.
        grade_workers: grading processes.
    """

    seed: int = 0
    batch_size: int = 8
    grade_timeout_s: float = 5.0
    grade_workers: int = 2
