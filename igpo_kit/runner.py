"""Run a configured job in this process: plugins -> config -> run record -> job -> DONE.

:func:`execute` is what every executor calls (in-process, submitit local, Slurm); it takes only text, so a
job can cross a process boundary. Starting a job on an existing run directory resumes it: the job finds its
latest complete checkpoint there; a run already marked DONE returns its recorded result.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from igpo_kit.errors import ConfigError
from igpo_kit.runs import default_runs_dir


@dataclass
class Plan:
    """A validated config and where it will run."""

    config: Any
    run_dir: Path
    plugins: list[str]


def load_plugins(plugins: list[str] | tuple = ()) -> None:
    from igpo_kit.registry import load_plugin

    for p in plugins:
        load_plugin(p)


def prepare(recipe: str | None, gin_files=(), bindings=(), plugins=(), runs_dir: str | Path | None = None,
            name: str | None = None, fresh: bool = False,
            processes: Callable[[Any], tuple[int, str]] | None = None) -> Plan:
    """Parse and validate (values, and the data: :func:`igpo_kit.config.preflight.data_problems`); choose the run
    directory ``<runs_dir>/<name>/<run-id>`` (run-id: config hash). Writes nothing.

    ``processes``: ``config -> (planned number of processes, where it comes from)``, the launch plan
    (:func:`igpo_kit.launch.submit.planned_processes`); default: :func:`launcher_processes`.
    """
    from igpo_kit import config as cfg
    from igpo_kit.runs import run_id

    load_plugins(plugins)
    config = cfg.parse(recipe, gin_files=list(gin_files), bindings=list(bindings))
    from igpo_kit.config.preflight import data_problems

    problems = data_problems(*(processes(config) if processes is not None else launcher_processes()))
    if problems:
        raise ConfigError(*problems)
    name = name or (config.recipe.stem if config.recipe else config.job)
    rid = run_id(config.text)
    if fresh:
        rid += time.strftime("-%Y%m%d-%H%M%S")
    return Plan(config=config, run_dir=Path(runs_dir or default_runs_dir()) / name / rid, plugins=list(plugins))


def process_rank() -> int:
    """This process's rank in a multi-task job: ``$RANK``, else ``$SLURM_PROCID``, else 0."""
    for var in ("RANK", "SLURM_PROCID"):
        value = os.environ.get(var, "").strip()
        if value.isdigit():
            return int(value)
    return 0


def launcher_processes() -> tuple[int, str]:
    """``(processes, where the number comes from)`` a launcher that starts one process per rank (``torchrun``,
    ``accelerate launch`` with its ``num_processes``, DeepSpeed's launcher) gave this job: ``$WORLD_SIZE``, else 1."""
    value = os.environ.get("WORLD_SIZE", "").strip()
    if value.isdigit() and int(value) > 1:
        return int(value), f"$WORLD_SIZE = {value} (the launcher's)"
    return 1, ""


def execute(config_text: str, bindings: list[str] | tuple = (), run_dir: str | Path = "runs/run",
            plugins: list[str] | tuple = (), argv: list[str] | None = None) -> dict[str, Any]:
    """Parse ``config_text``, record the run, call the job (resuming in ``run_dir``), mark DONE or FAILED.

    Every rank of a multi-task job calls this; only rank 0 (:func:`process_rank`) writes the run record
    (config.gin, run.json, operative config, result.json, DONE/FAILED); the others only run the job.
    """
    from igpo_kit import config as cfg
    from igpo_kit.progress import quiet_library_bars
    from igpo_kit.runs import Run, RunLock

    quiet_library_bars()  # in a log, the libraries' tqdm bars are fragments between the kit's progress lines
    load_plugins(plugins)
    run_dir = Path(run_dir)
    result_path = run_dir / "result.json"
    if (run_dir / "DONE").exists() and result_path.exists():
        return json.loads(result_path.read_text())
    config = cfg.parse(text=config_text)
    if process_rank() != 0:
        result = cfg.call_job(config, run=Run(run_dir))
        return {**(result if isinstance(result, dict) else {"result": result}), "run_dir": str(run_dir)}
    with RunLock(run_dir):
        if (run_dir / "DONE").exists() and result_path.exists():  # finished while we waited for the lock
            return json.loads(result_path.read_text())
        return _execute_locked(config, bindings, run_dir, argv)


def _execute_locked(config, bindings, run_dir: Path, argv) -> dict[str, Any]:
    """Rank 0 of :func:`execute`, holding the run directory's lock."""
    from igpo_kit import config as cfg
    from igpo_kit.atomic import write_atomic
    from igpo_kit.runs import start_record

    seed = cfg.query(f"igpo_kit.entry.{config.job}.seed")
    from igpo_kit.registry import LOADED_PLUGINS

    run = start_record(run_dir, config.text, list(bindings), list(LOADED_PLUGINS), config.job, seed=seed, argv=argv)
    t0 = time.time()
    try:
        result = cfg.call_job(config, run=run)
    except BaseException as exc:
        _mark_failed(run, exc, t0)
        raise
    from igpo_kit.secrets import redact

    write_atomic(run.dir / "operative_config.gin", redact(cfg.operative_text()))
    result = result if isinstance(result, dict) else {"result": result}
    result = {**result, "run_dir": str(run.dir)}
    run.write_json("result.json", result)
    timings = run.info.get("timings", {})
    timings["total_s"] = round(timings.get("total_s", 0.0) + time.time() - t0, 3)
    run.update_info(status="done", finished=time.time(), timings=timings)
    write_atomic(run.dir / "DONE", "")
    return result


def _mark_failed(run, exc: BaseException, t0: float) -> None:
    """run.json -> "failed" with the reason, and a FAILED marker, even on a full disk: when the atomic write of
    run.json fails (its temp file is already removed), run.json is rewritten in place (truncating frees its blocks
    first); the marker is an empty file. The job's own exception is what propagates."""
    from igpo_kit.atomic import write_atomic

    run.info.update(status="failed", error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                    timings={**run.info.get("timings", {}), "last_start_s": round(time.time() - t0, 3)})
    try:
        run.write_json("run.json", run.info)
    except OSError:
        try:
            with open(run.dir / "run.json", "w") as f:
                f.write(json.dumps(run.info, default=str))
        except OSError:
            pass
    try:
        write_atomic(run.dir / "FAILED", f"{type(exc).__name__}\n")
    except OSError:
        try:
            (run.dir / "FAILED").touch()
        except OSError:
            pass


def run_local(plan: Plan, argv: list[str] | None = None) -> dict[str, Any]:
    """Run a prepared plan in this process."""
    return execute(plan.config.text, plan.config.bindings, plan.run_dir, plan.plugins, argv=argv or sys.argv)


__all__ = ["ConfigError", "Plan", "execute", "launcher_processes", "prepare", "process_rank", "run_local"]
