"""Experiment tracking: ``report_to = ['tensorboard' | 'wandb' | 'mlflow']`` through accelerate's trackers.

``metrics.jsonl`` in the run directory stays the source of truth; a tracker receives a copy of every line the job
logs (:meth:`igpo_kit.runs.Run.log`): its numbers as scalars at the line's ``step`` (RL, SFT) or at the line's
index (evaluation, one line per task, ``task/<key>`` names). Where each writes:

* ``tensorboard``: event files under ``<run dir>/tracking/tensorboard/<job>`` (``tensorboard --logdir runs``);
  needs the ``tensorboard`` package (``pip install 'igpo-kit[tensorboard]'``).
* ``wandb``: a W&B run named after the run directory, project ``$WANDB_PROJECT`` or ``igpo-kit``; offline with
  ``WANDB_MODE=offline`` (files under ``<run dir>/tracking/wandb``); ``pip install 'igpo-kit[wandb]'``. Credentials
  come from ``wandb login`` / ``$WANDB_API_KEY``, never from a binding.
* ``mlflow``: the server or folder of ``$MLFLOW_TRACKING_URI`` (mlflow's default: ``./mlruns``), experiment
  ``$MLFLOW_EXPERIMENT_NAME`` or ``igpo-kit``, artifacts under ``<run dir>/tracking/mlruns``;
  ``pip install 'igpo-kit[mlflow]'``.

Only the main process reports: the entries start trackers there alone (as accelerate's ``init_trackers``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
from pathlib import Path
from typing import Any, Sequence

from igpo_kit.errors import ConfigError

__all__ = ["TRACKERS", "Tracking", "check_report_to", "start_tracking", "tracked"]

#: report_to name -> (the package it needs, the pyproject extra that installs it)
TRACKERS = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"), "mlflow": ("mlflow", "mlflow")}


def check_report_to(report_to: Sequence[str] | str | None) -> list[str]:
    """The tracker names of ``report_to`` (a name, a list, None/``[]``: none); ``ConfigError`` for an unknown name
    (with the choices) or a tracker whose package is not installed (with the pip command)."""
    if report_to is None or report_to == "none":
        return []
    names = [report_to] if isinstance(report_to, str) else list(report_to)
    problems = []
    for n in names:
        if n not in TRACKERS:
            problems.append(f"report_to: unknown tracker {n!r} (choices: {', '.join(TRACKERS)})")
            continue
        package, extra = TRACKERS[n]
        if importlib.util.find_spec(package) is None:
            problems.append(f"report_to {n!r} needs the {package} package: pip install 'igpo-kit[{extra}]'")
    if problems:
        raise ConfigError(*problems)
    return list(dict.fromkeys(names))


def _scalars(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in values.items():
        if isinstance(v, bool):
            v = int(v)
        if isinstance(v, (int, float)) and math.isfinite(v):
            out[f"{prefix}{k}"] = v
    return out


def _config(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (bool, int, float, str)) or v is None else str(v) for k, v in values.items()}


class Tracking:
    """The started trackers of one run; call it with each metrics line (a :class:`~igpo_kit.runs.Run` sink)."""

    def __init__(self, trackers: list, step_key: str | None = "step", prefix_key: str | None = None):
        self.trackers = trackers
        self.step_key, self.prefix_key = step_key, prefix_key
        self._lines = 0

    def __call__(self, metrics: dict[str, Any]) -> None:
        step = metrics.get(self.step_key) if self.step_key else None
        if not isinstance(step, int):
            step = self._lines
        prefix = f"{metrics[self.prefix_key]}/" if self.prefix_key and self.prefix_key in metrics else ""
        values = _scalars({k: v for k, v in metrics.items() if k != self.step_key}, prefix)
        self._lines += 1
        if values:
            for t in self.trackers:
                t.log(values, step=step)

    def close(self) -> None:
        for t in self.trackers:
            t.finish()
        self.trackers = []


def start_tracking(report_to: Sequence[str] | str | None, run_dir: str | os.PathLike, job: str,
                   config: dict[str, Any] | None = None, step_key: str | None = "step",
                   prefix_key: str | None = None) -> Tracking:
    """Start the trackers named in ``report_to`` for a job writing into ``run_dir`` (see the module docstring).

    Args:
        report_to: tracker names (checked with :func:`check_report_to`).
        run_dir: the run directory (trackers that write files write under ``run_dir/tracking``).
        job: the job's name (``rl``, ``sft``, ``eval``): the TensorBoard sub-folder, part of the W&B/MLflow run name.
        config: the job's settings, stored as the run's hyperparameters (non-scalars as text).
        step_key: the metrics key holding the step (None: the line index).
        prefix_key: a metrics key whose value prefixes every name (evaluation: ``task``).
    """
    names = check_report_to(report_to)
    if not names:
        return Tracking([])
    from accelerate.tracking import MLflowTracker, TensorBoardTracker, WandBTracker

    run_dir = Path(run_dir)
    where = run_dir / "tracking"
    where.mkdir(parents=True, exist_ok=True)
    run_name = f"{run_dir.parent.name}-{run_dir.name}-{job}"
    trackers = []
    for n in names:
        if n == "tensorboard":
            t = TensorBoardTracker(job, where / "tensorboard")
        elif n == "wandb":
            t = WandBTracker(os.environ.get("WANDB_PROJECT", "igpo-kit"), name=run_name, dir=str(where))
        else:
            t = MLflowTracker(experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME", "igpo-kit"),
                              logging_dir=str(where / "mlruns"), run_name=run_name)
        if hasattr(t, "start"):
            t.start()
        if config:
            t.store_init_configuration(_config(config))
        trackers.append(t)
    return Tracking(trackers, step_key=step_key, prefix_key=prefix_key)


@contextlib.contextmanager
def tracked(run: Any, report_to: Sequence[str] | str | None, job: str, config: dict[str, Any] | None = None,
            step_key: str | None = "step", prefix_key: str | None = None):
    """While the block runs, every line ``run.log`` writes also goes to the trackers of ``report_to``; they are
    finished when it ends (also on an error). Without trackers (or without a run) it does nothing."""
    if run is None or not check_report_to(report_to):
        yield None
        return
    tracking = start_tracking(report_to, run.dir, job, config, step_key=step_key, prefix_key=prefix_key)
    run.sinks.append(tracking)
    try:
        yield tracking
    finally:
        run.sinks.remove(tracking)
        tracking.close()
