"""Views of a manifest for people: the status table (``igpo-kit status``, ``run --wait``), job progress from the
run directory, log paths per task, and the wait loop.

Everything here reads files and asks Slurm through :mod:`igpo_kit.launch.manifest` (sacct, else squeue, else
files), so it works without accounting and after the launcher exited.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from igpo_kit.launch.manifest import (ACTIVE_STATES, TERMINAL_STATES, JobEntry, JobStatus, Manifest, job_records,
                                      summarize)

_STATE_STYLE = {"COMPLETED": "green", "RUNNING": "cyan", "PENDING": "yellow", "REQUEUED": "yellow",
                "CANCELLED": "magenta", "UNKNOWN": "dim"}


def is_terminal(state: str) -> bool:
    return state in TERMINAL_STATES


def progress(run_dir: str | os.PathLike | None) -> str:
    """``step N`` from the last line of ``metrics.jsonl`` (``N lines`` when it has no step), ``done`` /
    ``failed`` from the markers, ``''`` when nothing was written yet."""
    if not run_dir:
        return ""
    d = Path(run_dir)
    if (d / "DONE").exists():
        return "done"
    if (d / "FAILED").exists():
        return "failed"
    path = d / "metrics.jsonl"
    if not path.is_file():
        return ""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - 65536))
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    if not lines:
        return ""
    try:
        last = json.loads(lines[-1])
    except json.JSONDecodeError:
        last = {}
    if isinstance(last, dict) and "step" in last:
        return f"step {int(last['step'])}"
    with path.open("rb") as f:
        return f"{sum(1 for _ in f)} lines"


def task_log(entry: JobEntry, task: int = 0, stream: str = "err") -> Path | None:
    """The log file of one task of a job (submitit names them ``<id>_<task>_log.{out,err}``)."""
    name = entry.stderr if stream == "err" else entry.stdout
    if not name:
        return None
    p = Path(name)
    if task:
        p = p.with_name(p.name.replace("_0_log.", f"_{task}_log.", 1))
    return p


def status_table(manifest: Manifest, records: Sequence[JobStatus], *, title: str | None = None):
    """A rich Table: one row per job (id, array index, sweep cell, state, where the state came from, progress,
    run dir; relative to a sweep's directory)."""
    from rich.table import Table

    root = manifest.path.parent if manifest.kind == "sweep" and manifest.path is not None else None
    counts = summarize({r.job_id: r.state for r in records})
    caption = "  ".join(f"{k.lower()} {v}" for k, v in counts.items())
    t = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    array = any(r.array_index is not None for r in records)
    cells = any(r.cell for r in records)
    t.add_column("job")
    if array:
        t.add_column("#", justify="right")
    if cells:
        t.add_column("cell")
    t.add_column("state")
    t.add_column("from", style="dim")
    t.add_column("progress")
    t.add_column("run dir", overflow="fold")
    for r in records:
        style = _STATE_STYLE.get(r.state, "red" if r.state in TERMINAL_STATES else "")
        row = [r.job_id]
        if array:
            row.append("" if r.array_index is None else str(r.array_index))
        if cells:
            row.append(r.cell or "")
        row += [f"[{style}]{r.state}[/{style}]" if style else r.state, r.source, progress(r.run_dir),
                _short(r.run_dir, root)]
        t.add_row(*row)
    return t


def _short(run_dir: str | None, root: Path | None) -> str:
    if not run_dir:
        return ""
    if root is not None:
        try:
            return str(Path(run_dir).relative_to(root.absolute()))
        except ValueError:
            pass
    return run_dir


def manifest_title(manifest: Manifest) -> str:
    profile = f"{manifest.cluster}/{manifest.resources}" if manifest.cluster else (manifest.resources or "")
    job = manifest.extra.get("job")
    what = f"{manifest.kind} {manifest.name}".strip()
    return "  ".join(x for x in (what, f"[{job}]" if job else "", f"executor {manifest.executor}", profile) if x)


def wait(manifest: Manifest, *, console=None, poll_s: float = 5.0, timeout_s: float | None = None,
         live: bool = True, lost_s: float = 120.0,
         records_fn: Callable[[Manifest], list[JobStatus]] = job_records) -> list[JobStatus]:
    """Poll until every job of ``manifest`` reached a terminal state, showing a live table; return the records.
    A job nothing knows about (state UNKNOWN) for ``lost_s`` seconds counts as ended.

    Ctrl-C stops waiting (the jobs keep running) and re-raises ``KeyboardInterrupt``. ``timeout_s`` raises
    ``TimeoutError`` with the last records.
    """
    from rich.console import Console
    from rich.live import Live

    console = console or Console(stderr=True)
    start = time.monotonic()
    deadline = None if timeout_s is None else start + timeout_s

    def nap() -> None:  # poll every second at first (short jobs), then every ``poll_s``
        time.sleep(min(poll_s, 1.0 + (time.monotonic() - start) / 30.0))

    title = manifest_title(manifest)
    records = records_fn(manifest)

    unknown_since: dict[str, float] = {}

    def settled(recs: list[JobStatus]) -> bool:
        """Every job ended, or nothing (queue, files) has known it for ``lost_s`` seconds."""
        now = time.monotonic()
        for r in recs:
            if r.state == "UNKNOWN":
                unknown_since.setdefault(r.job_id, now)
            else:
                unknown_since.pop(r.job_id, None)
        return all(is_terminal(r.state) or now - unknown_since.get(r.job_id, now) > lost_s for r in recs)

    if not live or not console.is_terminal:
        last = None
        while not settled(records):
            summary = summarize({r.job_id: r.state for r in records})
            if summary != last:
                console.print("  ".join(f"{k.lower()} {v}" for k, v in summary.items()), highlight=False)
                last = summary
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"jobs not finished after {timeout_s}s: {summary}")
            nap()
            records = records_fn(manifest)
        console.print(status_table(manifest, records, title=title))
        return records
    with Live(status_table(manifest, records, title=title), console=console, refresh_per_second=2,
              transient=False) as view:
        while not settled(records):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"jobs not finished after {timeout_s}s")
            nap()
            records = records_fn(manifest)
            view.update(status_table(manifest, records, title=title))
    return records


def active(records: Sequence[JobStatus]) -> list[JobStatus]:
    """Records of jobs known to be queued or running (UNKNOWN is not: nothing can be done about those)."""
    return [r for r in records if r.state in ACTIVE_STATES]


def record_dicts(records: Sequence[JobStatus]) -> list[dict[str, Any]]:
    return [{"job_id": r.job_id, "array_index": r.array_index, "cell": r.cell, "state": r.state, "source": r.source,
             "run_dir": r.run_dir, "progress": progress(r.run_dir)} for r in records]


__all__ = ["active", "is_terminal", "manifest_title", "progress", "record_dicts", "status_table", "task_log", "wait"]
