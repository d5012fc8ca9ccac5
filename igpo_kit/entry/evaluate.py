"""The evaluation job's root: a model and a list of benchmark tasks (paper Table 3)."""

from __future__ import annotations

from typing import Any


def evaluate(
    model: Any = None,
    tasks: Any = (),
    seed: int = 0,
    batch_size: int = 8,
    grade_timeout_s: float = 5.0,
    grade_workers: int = 2,
    progress: bool = True,
    report_to: str | list[str] | tuple[str, ...] = (),
    run: Any = None,
) -> dict:
    """Evaluate ``model`` on ``tasks`` (each an ``EvalTask``: data, prompt, sampler, grader, num_samples).

    Args:
        model: a DiffusionLM (``@model.llada()``, ``@model.tiny()``...).
        tasks: ``[@gsm8k/tasks.task(), ...]``.
        seed: seed of the sampling generator (each task starts from it).
        batch_size: rows per sampler call.
        grade_timeout_s: wall-clock bound per graded answer; a timed-out answer scores 0 and is counted.
        grade_workers: grading processes.
        progress: progress bars / lines of generation and grading on stderr.
        report_to: experiment trackers that also get each task's metrics (``<task>/<metric>``):
            ``['tensorboard']``, ``'wandb'``, ``'mlflow'`` (:mod:`igpo_kit.tracking`).
        run: the run record (passed by the runner).
    """
    from igpo_kit.errors import ConfigError
    from igpo_kit.evaluation.job import run_eval

    if model is None or not tasks:
        raise ConfigError("entry.evaluate needs `model` and at least one task in `tasks`")
    from igpo_kit.sampling.generate import check_sampler_model

    for task in tasks:
        check_sampler_model(getattr(task, "sampler", None), model)
    from igpo_kit.tracking import tracked

    settings = dict(seed=seed, batch_size=batch_size, grade_timeout_s=grade_timeout_s,
                    tasks=",".join(getattr(t, "name", "?") for t in tasks))
    with tracked(run, report_to, "eval", config=settings, step_key=None, prefix_key="task"):
        return run_eval(model, list(tasks), run, seed=seed, batch_size=batch_size, grade_timeout_s=grade_timeout_s,
                        grade_workers=grade_workers, progress=progress)
