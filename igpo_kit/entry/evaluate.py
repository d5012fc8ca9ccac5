"""The evaluation job's root: a model and a list of benchmark tasks (paper Table 3)."""

from __future__ import annotations

import dataclasses
from typing import Any

from igpo_kit.evaluation.settings import EvalSettings
from igpo_kit.settings import flat_settings


@flat_settings(settings=EvalSettings)
def evaluate(
    model: Any = None,
    tasks: Any = (),
    settings: EvalSettings = EvalSettings(),
    progress: bool = True,
    report_to: str | list[str] | tuple[str, ...] = (),
    run: Any = None,
) -> dict:
    """Evaluate ``model`` on ``tasks`` (each an ``EvalTask``: data, prompt, sampler, grader, num_samples).

    Args:
        model: a DiffusionLM (``@model.llada()``, ``@model.tiny()``...).
        tasks: ``[@gsm8k/tasks.task(), ...]``.
        settings: seed, batch size and grading (:class:`~igpo_kit.evaluation.settings.EvalSettings`; one keyword
            each in recipes, listed below).
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

    config = {**dataclasses.asdict(settings), "tasks": ",".join(getattr(t, "name", "?") for t in tasks)}
    with tracked(run, report_to, "eval", config=config, step_key=None, prefix_key="task"):
        return run_eval(model, list(tasks), run, settings, progress=progress)
