"""Plan (validate every cell), record (``sweep_manifest.json``) and run the cells of a sweep.

A sweep directory holds::

    sweep_manifest.json     the spec, every cell (id, arm, axis values, bindings, run dir, status, timings)
    cells/<cell id>/<run-id>/   each cell's run directory (config.gin, metrics.jsonl, run.json, DONE/FAILED ...)
    logs/<cell id>.log      stdout + stderr of cells run as subprocesses

Run directories are content-addressed (cell id from the spec content, run-id from the resolved config), so
running a spec again into the same sweep directory runs only the cells whose run directory lacks ``DONE``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from igpo_kit.errors import ConfigError
from igpo_kit.report.grouping import method_label
from igpo_kit.report.load import MANIFEST  # the sweep manifest, which reports read
from igpo_kit.sweep.spec import Cell, Spec, expand, short_keys

EXECUTORS = ("local", "subprocess")
SCHEMA = 1


@dataclass
class PlannedCell:
    """A validated cell and where it runs."""

    cell: Cell
    label: str
    method: str
    run_dir: Path
    config_text: str
    job: str
    status: str = "pending"  # pending | incomplete | running | done | failed | submitted (Slurm)
    error: str | None = None
    seconds: float | None = None
    started: float | None = None
    finished: float | None = None
    log: str | None = None
    returncode: int | None = None
    job_id: str | None = None  # Slurm job (array element) id when submitted with --executor slurm

    @property
    def id(self) -> str:
        return self.cell.id


@dataclass
class Sweep:
    """A planned sweep: its spec, directory, cells and plugins."""

    spec: Spec
    dir: Path
    cells: list[PlannedCell]
    plugins: list[str] = field(default_factory=list)
    executor: str = "local"
    created: float | None = None
    launch: dict[str, Any] = field(default_factory=dict)  # Slurm settings of the last submission (for --resume)

    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.cells:
            out[c.status] = out.get(c.status, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        short = short_keys(self.spec.axis_keys)
        return {
            "schema": SCHEMA,
            "kind": "sweep",
            "name": self.spec.name,
            "spec": self.spec.to_dict(),
            "spec_text": _spec_text(self.spec),
            "plugins": self.plugins,
            "executor": self.executor,
            **({"launch": self.launch} if self.launch else {}),
            "created": self.created,
            "updated": time.time(),
            "axes": {k: short[k] for k in self.spec.axis_keys},
            "counts": self.counts(),
            "cells": [
                {
                    "id": c.id, "arm": c.cell.arm, "label": c.label, "method": c.method, "keys": c.cell.keys,
                    "values": c.cell.values, "bindings": c.cell.bindings, "gin_files": c.cell.gin_files,
                    "base": c.cell.base, "job": c.job, "run_dir": _rel(c.run_dir, self.dir), "status": c.status,
                    "error": c.error, "seconds": c.seconds, "started": c.started, "finished": c.finished,
                    "log": c.log, "returncode": c.returncode, **({"job_id": c.job_id} if c.job_id else {}),
                }
                for c in self.cells
            ],
        }

    def save(self) -> Path:
        """Write ``sweep_manifest.json`` atomically."""
        from igpo_kit.atomic import write_atomic

        self.dir.mkdir(parents=True, exist_ok=True)
        if self.created is None:
            self.created = time.time()
        write_atomic(self.manifest_path, json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        return self.manifest_path


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def _spec_text(spec: Spec) -> str | None:
    if spec.source and Path(spec.source).is_file():
        try:
            return Path(spec.source).read_text()
        except OSError:
            return None
    return None


def read_manifest(sweep_dir: str | Path) -> dict[str, Any]:
    p = Path(sweep_dir) / MANIFEST
    if not p.is_file():
        raise ConfigError(f"{sweep_dir} is not a sweep directory (no {MANIFEST})")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}: unreadable manifest ({exc})") from None


def default_sweep_dir(spec: Spec) -> Path:
    from igpo_kit.runner import default_runs_dir

    return default_runs_dir() / "sweeps" / spec.name


def run_status(run_dir: Path) -> str:
    if (run_dir / "DONE").exists():
        return "done"
    if (run_dir / "FAILED").exists():
        return "failed"
    if run_dir.exists():
        return "incomplete"
    return "pending"


def plan(spec: Spec, sweep_dir: str | Path, plugins: Sequence[str] = (),
         processes: Callable[[Any, Any], tuple[int, str]] | None = None) -> Sweep:
    """Expand the spec and validate EVERY cell (gin parse + checks) before anything runs; writes nothing.

    ``processes``: ``(cell, config) -> (processes, where from)``, each cell's planned number of processes for the
    data checks (e.g. :func:`igpo_kit.launch.sweep.cell_processes` for a Slurm submission); default: this process.

    Raises:
        ConfigError: all problems of all cells, one line each (cells sharing a problem are listed together).
    """
    from igpo_kit.runner import load_plugins, prepare

    load_plugins(list(plugins))
    cells = expand(spec)
    sweep_dir = Path(sweep_dir)
    short = short_keys(spec.axis_keys)
    planned: list[PlannedCell] = []
    problems: dict[str, list[str]] = {}
    for cell in cells:
        label = cell.label(short)
        try:
            per_cell = (lambda config, cell=cell: processes(cell, config)) if processes is not None else None
            p = prepare(cell.base, cell.gin_files, cell.bindings, plugins, runs_dir=sweep_dir / "cells", name=cell.id,
                        processes=per_cell)
        except ConfigError as exc:
            for line in exc.lines:
                problems.setdefault(line, []).append(f"{label} [{cell.id}]")
            continue
        planned.append(PlannedCell(cell=cell, label=label, method=method_label(cell.arm, cell.keys, short),
                                   run_dir=p.run_dir, config_text=p.config.text, job=p.config.job,
                                   status=run_status(p.run_dir)))
    lines = []
    for line, where in problems.items():
        cells_txt = where[0] if len(where) == 1 else f"{len(where)} cells ({', '.join(where[:4])}" + \
            (", ..." if len(where) > 4 else "") + ")"
        lines.append(f"cell {cells_txt}: {line}")
    if not problems and spec.baseline is not None:
        methods = list(dict.fromkeys(c.method for c in planned))
        arms = [a.name for a in spec.arms]
        if spec.baseline not in methods and spec.baseline not in arms:
            import difflib

            close = difflib.get_close_matches(spec.baseline, methods + arms, n=3, cutoff=0.4)
            lines.append(f"{spec.source or spec.name}: baseline {spec.baseline!r} is no method of this sweep"
                         + (f" (did you mean {', '.join(close)}?)" if close else f" (methods: {', '.join(methods)})"))
    if lines:
        n = len(cells)
        raise ConfigError(*lines, f"{n - len(planned)} of {n} cells invalid; nothing was run")
    created = None
    if (sweep_dir / MANIFEST).is_file():
        try:
            created = json.loads((sweep_dir / MANIFEST).read_text()).get("created")
        except (json.JSONDecodeError, OSError):
            created = None
    return Sweep(spec=spec, dir=sweep_dir, cells=planned, plugins=list(plugins), created=created)


# ----------------------------------------------------------------------------------------------- running


def cell_command(c: PlannedCell, sweep_dir: Path, plugins: Sequence[str] = ()) -> list[str]:
    """The equivalent ``igpo-kit run`` command of a cell (recorded as the run's command line)."""
    cmd = ["igpo-kit", "run", c.cell.base]
    for f in c.cell.gin_files:
        cmd += ["-f", f]
    for b in c.cell.bindings:
        cmd += ["-b", b]
    for p in plugins:
        cmd += ["--plugin", p]
    return cmd + ["--runs-dir", str(sweep_dir / "cells"), "--name", c.id]


def _first_line(exc: BaseException) -> str:
    msg = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _run_inprocess(cells: list[PlannedCell], sweep_dir: Path, plugins: Sequence[str],
                   notify: Callable[[PlannedCell], None]) -> None:
    from igpo_kit.runner import execute

    for c in cells:
        c.status, c.started, c.error, c.finished, c.seconds = "running", time.time(), None, None, None
        notify(c)
        try:
            execute(c.config_text, c.cell.bindings, c.run_dir, list(plugins), argv=cell_command(c, sweep_dir, plugins))
            c.status = "done"
        except KeyboardInterrupt:
            c.status, c.error = "failed", "interrupted"
            c.finished = time.time()
            c.seconds = round(c.finished - c.started, 3)
            notify(c)
            raise
        except Exception as exc:  # noqa: BLE001 - one failed cell must not stop the sweep
            c.status, c.error = "failed", _first_line(exc)
        c.finished = time.time()
        c.seconds = round(c.finished - c.started, 3)
        notify(c)


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _last_error(log: Path) -> str | None:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    for ln in reversed(lines):
        if "Error" in ln or "Exception" in ln or ln.startswith("error"):
            return ln[:300]
    return lines[-1][:300] if lines else None


def _run_subprocesses(cells: list[PlannedCell], sweep_dir: Path, plugins: Sequence[str], max_parallel: int,
                      notify: Callable[[PlannedCell], None], poll_s: float = 0.2) -> None:
    logs = sweep_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    queue = list(cells)
    active: dict[int, tuple[subprocess.Popen, PlannedCell, Any]] = {}
    env = _worker_env()
    try:
        while queue or active:
            while queue and len(active) < max(1, max_parallel):
                c = queue.pop(0)
                log_path = logs / f"{c.id}.log"
                fh = open(log_path, "a")
                payload = json.dumps({"config_text": c.config_text, "bindings": c.cell.bindings,
                                      "run_dir": str(c.run_dir), "plugins": list(plugins),
                                      "argv": cell_command(c, sweep_dir, plugins)})
                proc = subprocess.Popen([sys.executable, "-m", "igpo_kit.sweep._worker"], stdin=subprocess.PIPE,
                                        stdout=fh, stderr=subprocess.STDOUT, env=env, text=True)
                proc.stdin.write(payload)
                proc.stdin.close()
                c.status, c.started, c.error, c.finished, c.seconds = "running", time.time(), None, None, None
                c.log, c.returncode = _rel(log_path, sweep_dir), None
                active[proc.pid] = (proc, c, fh)
                notify(c)
            time.sleep(poll_s)
            for pid, (proc, c, fh) in list(active.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                fh.close()
                del active[pid]
                c.returncode, c.finished = rc, time.time()
                c.seconds = round(c.finished - c.started, 3)
                if rc == 0 and (Path(c.run_dir) / "DONE").exists():
                    c.status = "done"
                else:
                    c.status = "failed"
                    c.error = _last_error(sweep_dir / c.log) or f"exit code {rc}"
                notify(c)
    except KeyboardInterrupt:
        for proc, c, fh in active.values():
            proc.terminate()
        for proc, c, fh in active.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            fh.close()
            c.status, c.error, c.finished = "failed", "interrupted", time.time()
            c.seconds = round(c.finished - c.started, 3)
            notify(c)
        raise


def run_cells(cells: Sequence[PlannedCell], executor: str = "local", max_parallel: int = 1,
              sweep_dir: str | Path = ".", plugins: Sequence[str] = (), skip_done: bool = True,
              on_update: Callable[[PlannedCell], None] | None = None) -> list[PlannedCell]:
    """Run the cells that are not DONE; returns the cells that were run (their ``status`` updated).

    executor: ``local`` runs in this process one after another (``max_parallel`` 1) or as up to ``max_parallel``
    subprocesses; ``subprocess`` always uses subprocesses (``python -m igpo_kit.sweep._worker``, fed the resolved
    config text on stdin: only text crosses). ``on_update(cell)`` is called on every status change (the CLI
    rewrites the manifest there). Slurm is :func:`igpo_kit.launch.sweep.submit_sweep` (job arrays, returns at once).
    """
    if executor not in EXECUTORS:
        if executor == "slurm":
            raise ConfigError("run_cells runs cells on this machine; submit to Slurm with "
                              "igpo_kit.launch.sweep.submit_sweep (igpo-kit sweep --executor slurm)")
        raise ConfigError(f"unknown executor {executor!r} for sweeps ({', '.join(EXECUTORS)})")
    if max_parallel < 1:
        raise ConfigError(f"--max-parallel must be >= 1, got {max_parallel}")
    sweep_dir = Path(sweep_dir)
    todo = []
    for c in cells:
        c.status = run_status(Path(c.run_dir))
        if skip_done and c.status == "done":
            continue
        todo.append(c)
    notify = on_update or (lambda c: None)
    if not todo:
        return []
    from igpo_kit.progress import Progress

    ended: dict[int, str] = {}  # id(cell) -> "done" | "failed", for cells that ran here
    with Progress("sweep cells", len(todo)) as progress:
        def notify_and_count(c: PlannedCell) -> None:
            notify(c)
            if c.status in ("done", "failed"):
                ended[id(c)] = c.status
                failed = sum(v == "failed" for v in ended.values())
                progress.update(len(ended), status=f"{failed} failed" if failed else "")

        if executor == "local" and max_parallel == 1:
            _run_inprocess(todo, sweep_dir, plugins, notify_and_count)
        else:
            _run_subprocesses(todo, sweep_dir, plugins, max_parallel, notify_and_count)
    return todo


__all__ = ["EXECUTORS", "MANIFEST", "PlannedCell", "Sweep", "cell_command", "default_sweep_dir", "method_label",
           "plan", "read_manifest", "run_cells", "run_status"]
