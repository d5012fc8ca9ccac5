"""Run records: every run is a self-describing directory ``runs/<name>/<run-id>/``.

It holds ``config.gin`` (full resolved config), ``operative_config.gin`` (what was actually used),
``bindings.txt`` (CLI overrides), ``run.json`` (git commit + dirty flag, package versions, plugins, seed,
command line, host, timings, status), ``metrics.jsonl``, ``DONE``/``FAILED`` markers and the job's outputs; ``.lock`` (:class:`RunLock`) keeps a second
process out while a job writes there. Environment variables are never written.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from igpo_kit.atomic import write_atomic  # noqa: F401  (also imported from here by older callers)

PACKAGES = ("igpo-kit", "torch", "transformers", "accelerate", "deepspeed", "datasets", "gin-config", "submitit",
            "math-verify", "typer", "rich", "peft")


RUNS_ENV = "IGPO_KIT_RUNS"


def default_runs_dir() -> Path:
    """The root of run directories when none is given: ``$IGPO_KIT_RUNS``, else ``./runs``."""
    return Path(os.environ.get(RUNS_ENV, "runs"))


def run_id(config_text: str) -> str:
    """Stable id from the resolved config: the same config resumes the same run directory."""
    return hashlib.sha1(config_text.encode()).hexdigest()[:10]


def git_state(cwd: Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the checkout the package runs from (None outside git)."""
    cwd = cwd or Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, timeout=10)
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}


def versions() -> dict[str, str | None]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    out["python"] = platform.python_version()
    return out


@dataclass
class Run:
    """A run directory and its metric log. Jobs receive one as ``run=`` and write outputs under ``run.dir``."""

    dir: Path
    info: dict[str, Any] = field(default_factory=dict)
    #: called with every logged line after it is written (experiment trackers: :mod:`igpo_kit.tracking`)
    sinks: list = field(default_factory=list)

    def __post_init__(self):
        self.dir = Path(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def metrics_path(self) -> Path:
        return self.dir / "metrics.jsonl"

    def log(self, metrics: dict[str, Any]) -> None:
        """Append one JSON line of metrics (flushed, so a killed run keeps what it logged)."""
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(metrics, default=_jsonable) + "\n")
            f.flush()
        for sink in self.sinks:
            sink(metrics)

    def truncate_metrics(self, keep: int) -> None:
        """Keep the first ``keep`` metric lines (on resume, drop lines logged after the checkpoint)."""
        if not self.metrics_path.exists():
            return
        lines = self.metrics_path.read_text().splitlines(keepends=True)
        write_atomic(self.metrics_path, "".join(lines[:keep]))

    def metrics(self) -> list[dict]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def write_json(self, name: str, obj: Any) -> Path:
        path = self.dir / name
        write_atomic(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")
        return path

    def update_info(self, **fields: Any) -> None:
        self.info.update(fields)
        self.write_json("run.json", self.info)

    @property
    def done(self) -> bool:
        return (self.dir / "DONE").exists()


def _jsonable(o: Any):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def start_record(run_dir: Path, config_text: str, bindings: list[str], plugins: list[str], job: str,
                 seed: Any = None, argv: list[str] | None = None) -> Run:
    """Create (or reopen) the run directory and write config.gin, bindings.txt and run.json."""
    from igpo_kit.secrets import redact

    run = Run(Path(run_dir))
    write_atomic(run.dir / "config.gin", redact(config_text))  # a plugin's component could let one through
    write_atomic(run.dir / "bindings.txt", "".join(redact(b) + "\n" for b in bindings))
    previous = {}
    if (run.dir / "run.json").exists():
        try:
            previous = json.loads((run.dir / "run.json").read_text())
        except json.JSONDecodeError:
            previous = {}
    starts = previous.get("starts", []) + [time.time()]
    (run.dir / "FAILED").unlink(missing_ok=True)
    run.info = {
        "job": job,
        "run_id": run.dir.name,
        "seed": seed,
        "status": "running",
        "command": [redact(a) for a in (argv if argv is not None else sys.argv)],
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "plugins": plugins,
        "git": git_state(),
        "versions": versions(),
        "created": previous.get("created", starts[0]),
        "starts": starts,
        "timings": previous.get("timings", {}),
    }
    run.write_json("run.json", run.info)
    return run


LOCK_FILE = ".lock"
_HELD_LOCKS: set[int] = set()  # lock fds of this process


def _drop_locks_in_child() -> None:
    """A forked child (grading worker, data loader) must not keep the parent's lock alive after the parent dies."""
    for fd in list(_HELD_LOCKS):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_drop_locks_in_child)


class RunLock:
    """An advisory lock on a run directory (``fcntl.flock`` on ``<run dir>/.lock``), held while a job writes there.

    The kernel releases it when the holder exits, however it exits (kill -9 included), so a dead holder never
    blocks a resume. The lock file records the holder (pid, host, Slurm job id) for the message a second process
    gets: :class:`~igpo_kit.errors.ConfigError` (exit 2) naming them. A Slurm requeue restarts the *same* job id;
    when the recorded holder is this job's earlier instance, the new one waits (up to ``requeue_wait_s``) for it
    to finish exiting instead of failing.
    """

    def __init__(self, run_dir: Path, requeue_wait_s: float = 120.0, wait: bool = False,
                 on_wait: Callable[[dict[str, Any]], None] | None = None):
        """``wait=True``: a second process blocks until the holder releases the lock (or exits) instead of failing;
        ``on_wait`` is called once with the holder's record before it blocks (to say whom it waits for)."""
        self.path = Path(run_dir) / LOCK_FILE
        self.requeue_wait_s = requeue_wait_s
        self.wait = wait
        self.on_wait = on_wait
        self._fd: int | None = None

    def holder(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, json.JSONDecodeError):
            return {}

    def acquire(self) -> RunLock:
        import fcntl

        from igpo_kit.errors import ConfigError

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                held = self.holder()
                if self.wait:
                    if self.on_wait is not None:
                        self.on_wait(held)
                    fcntl.flock(fd, fcntl.LOCK_EX)  # blocks; the kernel frees it when the holder exits
                    break
                job = os.environ.get("SLURM_JOB_ID")
                if job and held.get("slurm_job_id") == job:  # our own job's previous instance, still exiting
                    deadline = deadline or time.monotonic() + self.requeue_wait_s
                    if time.monotonic() < deadline:
                        time.sleep(0.5)
                        continue
                os.close(fd)
                who = f"pid {held.get('pid', '?')} on host {held.get('host', '?')}"
                if held.get("slurm_job_id"):
                    who += f" (Slurm job {held['slurm_job_id']})"
                raise ConfigError(f"run directory {self.path.parent} is in use by {who}; wait for it to finish, "
                                  f"stop it, or use --fresh / another --name for a separate run") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "since": time.time()}).encode())
        self._fd = fd
        _HELD_LOCKS.add(fd)
        return self

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            _HELD_LOCKS.discard(self._fd)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
