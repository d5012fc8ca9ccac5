"""``igpo-kit status | logs | cancel RUN_OR_SWEEP_DIR``: read the directory's ``manifest.json`` (written when
``run --executor slurm|subprocess`` or ``sweep --executor slurm`` submitted it) and ask Slurm (sacct, else
squeue) or the files.

Registered on the main Typer app (``from igpo_kit.cli import launch_cmds`` at the bottom of main.py). Works
after the launcher exited and without Slurm accounting. A directory without ``manifest.json`` (a run made in
process, or a local sweep) still gets a ``status`` from its DONE/FAILED markers.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from igpo_kit.cli.app import app, err, handle_errors, out, print_table

STATUS_EPILOG = """[bold]Examples[/bold]

  igpo-kit status runs/igpo_full/547a0e9c47
  igpo-kit status runs/igpo_full/547a0e9c47 --watch
  igpo-kit status runs/sweeps/hint_ratio --json
"""

LOGS_EPILOG = """[bold]Examples[/bold]

  igpo-kit logs runs/igpo_full/547a0e9c47            # last 50 lines of stderr and stdout of rank 0
  igpo-kit logs runs/igpo_full/547a0e9c47 -f         # follow until the job ends (Ctrl-C stops following)
  igpo-kit logs runs/igpo_full/547a0e9c47 --task 7 --stream err -n 0
  igpo-kit logs runs/sweeps/hint_ratio --job 3       # array element 3 of a sweep
  igpo-kit logs runs/sweeps/hint_ratio --job partial-1a2b3c4d   # a sweep cell by its id
"""

CANCEL_EPILOG = """[bold]Examples[/bold]

  igpo-kit cancel runs/igpo_full/547a0e9c47
  igpo-kit cancel runs/sweeps/hint_ratio --job 12_3 --job 12_4
  igpo-kit cancel runs/sweeps/hint_ratio --job partial-1a2b3c4d     # one cell (sweep --resume resubmits it)
"""


def _manifest_or_local(directory: Path):
    """The directory's manifest; for a directory without one, a stand-in built from its run dir(s)."""
    from igpo_kit.errors import ConfigError
    from igpo_kit.launch.manifest import MANIFEST_NAME, JobEntry, Manifest, read_manifest

    if (directory / MANIFEST_NAME).is_file():
        return read_manifest(directory)
    if not directory.is_dir():
        raise ConfigError(f"{directory} does not exist")
    if (directory / "run.json").is_file() or (directory / "config.gin").is_file():
        return Manifest(executor="in-process", jobs=[JobEntry(job_id="-", run_dir=str(directory))],
                        name=directory.parent.name, path=None)
    sweep = directory / "sweep_manifest.json"
    if sweep.is_file():
        data = json.loads(sweep.read_text())
        jobs = [JobEntry(job_id=c.get("id", str(i)), array_index=i,
                         run_dir=str(directory / c["run_dir"]) if c.get("run_dir") else None)
                for i, c in enumerate(data.get("cells", []))]
        return Manifest(executor=str(data.get("executor", "local")) + " (sweep)", jobs=jobs, kind="sweep",
                        name=str(data.get("name", directory.name)))
    raise ConfigError(f"no manifest.json in {directory}",
                      "status/logs/cancel work on a run or sweep directory submitted with --executor slurm|subprocess")


def _records(manifest):
    from igpo_kit.launch.manifest import job_records

    recs = job_records(manifest)
    if manifest.executor == "in-process":  # nothing to ask but the run dir
        for r in recs:
            if r.state == "UNKNOWN" and r.run_dir and (Path(r.run_dir) / "metrics.jsonl").exists():
                r.state, r.source = "INCOMPLETE", "run dir"
    return recs


def _select(manifest, job: Optional[str]):
    """The manifest entry named by ``job``: a job id, a sweep cell id, or an array index (position for plain
    jobs); the only entry when ``job`` is None."""
    from igpo_kit.errors import ConfigError

    if not manifest.jobs:
        raise ConfigError(f"{manifest.path}: the manifest lists no jobs")
    if job is None:
        if len(manifest.jobs) > 1:
            example = manifest.jobs[0].cell or manifest.jobs[0].job_id
            raise ConfigError(f"{len(manifest.jobs)} jobs in this manifest; pick one with --job "
                              f"(a job id such as {manifest.jobs[0].job_id}, a cell id such as {example}, or an "
                              "array index)")
        return manifest.jobs[0]
    for match in (lambda i, e: job == e.job_id, lambda i, e: bool(e.cell) and job == e.cell,
                  lambda i, e: job == str(e.array_index if e.array_index is not None else i)):
        found = [e for i, e in enumerate(manifest.jobs) if match(i, e)]
        if len(found) > 1:
            raise ConfigError(f"--job {job} matches {len(found)} jobs ({', '.join(e.job_id for e in found)}): "
                              "give a job id or a cell id")
        if found:
            return found[0]
    cells = [e.cell for e in manifest.jobs if e.cell]
    raise ConfigError(f"no job {job!r} in the manifest (jobs: {', '.join(manifest.job_ids)}"
                      + (f"; cells: {', '.join(cells)}" if cells else "") + ")")


@app.command(epilog=STATUS_EPILOG)
@handle_errors
def status(
    directory: Path = typer.Argument(..., help="run or sweep directory (holds manifest.json)"),
    watch: bool = typer.Option(False, "--watch", "-w", help="keep refreshing until every job has ended"),
    poll: float = typer.Option(5.0, help="seconds between refreshes with --watch"),
    as_json: bool = typer.Option(False, "--json", help="print the states as JSON"),
):
    """States of the jobs of a submitted run or sweep (sacct, else squeue, else result files / DONE markers)."""
    from igpo_kit.launch.status import manifest_title, record_dicts, status_table, wait

    manifest = _manifest_or_local(directory)
    if watch and manifest.executor in ("slurm", "local"):
        records = wait(manifest, console=err, poll_s=poll)
    else:
        records = _records(manifest)
    if as_json:
        out.print_json(json.dumps({"dir": str(directory), "executor": manifest.executor, "kind": manifest.kind,
                                   "jobs": record_dicts(records)}, default=str))
        return
    if not watch or manifest.executor not in ("slurm", "local"):
        print_table(status_table(manifest, records, title=manifest_title(manifest)))
    if manifest.cancelled:
        err.print(f"cancelled by igpo-kit: {', '.join(sorted(manifest.cancelled))}", highlight=False)


def _tail(path: Path, n: int) -> tuple[str, int]:
    """The last ``n`` lines of ``path`` (all when ``n`` <= 0) and the file size."""
    data = path.read_bytes()
    text = data.decode(errors="replace")
    if n > 0:
        text = "".join(text.splitlines(keepends=True)[-n:])
    return text, len(data)


@app.command(epilog=LOGS_EPILOG)
@handle_errors
def logs(
    directory: Path = typer.Argument(..., help="run or sweep directory (holds manifest.json)"),
    job: Optional[str] = typer.Option(None, "--job", "-j", help="job id, cell id or array index (sweeps)"),
    task: int = typer.Option(0, "--task", "-t", help="task (rank) of a multi-task job"),
    stream: str = typer.Option("both", help="err | out | both (the training loop reports on stderr)"),
    lines: int = typer.Option(50, "--lines", "-n", help="last N lines (0: everything)"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new lines until the job ends"),
    poll: float = typer.Option(1.0, help="seconds between checks with --follow"),
):
    """Print a job's log files (submitit's <id>_<task>_log.err / .out in the run dir)."""
    from igpo_kit.errors import ConfigError
    from igpo_kit.launch.manifest import job_records
    from igpo_kit.launch.status import is_terminal, task_log

    if stream not in ("err", "out", "both"):
        raise ConfigError(f"--stream must be err, out or both, not {stream!r}")
    manifest = _manifest_or_local(directory)
    entry = _select(manifest, job)
    streams = ["err", "out"] if stream == "both" else [stream]
    paths = [p for p in (task_log(entry, task, s) for s in streams) if p is not None]
    if not paths:
        raise ConfigError(f"job {entry.job_id}: the manifest records no log files (executor {manifest.executor})")
    sizes = {}
    for p in paths:
        if not p.exists():
            err.print(f"[dim]{p}: not written yet (the job may still be pending)[/dim]", highlight=False)
            sizes[p] = 0
            continue
        text, sizes[p] = _tail(p, lines)
        if len(paths) > 1:
            sys.stdout.write(f"==> {p} <==\n")
        sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    if not follow:
        return
    single = type(manifest)(**{**{k: getattr(manifest, k) for k in ("executor", "folder", "kind", "name")},
                               "jobs": [entry], "cancelled": manifest.cancelled})
    newline = True
    try:
        while True:
            for p in paths:
                if p.exists() and p.stat().st_size > sizes.get(p, 0):
                    with p.open("rb") as f:
                        f.seek(sizes.get(p, 0))
                        chunk = f.read()
                    sizes[p] = sizes.get(p, 0) + len(chunk)
                    sys.stdout.write(chunk.decode(errors="replace"))
                    sys.stdout.flush()
                    newline = chunk.endswith(b"\n")
            state = job_records(single)[0].state
            if is_terminal(state):
                if not newline:
                    sys.stdout.write("\n")
                    sys.stdout.flush()
                err.print(f"[dim]job {entry.job_id} {state}[/dim]", highlight=False)
                return
            time.sleep(poll)
    except KeyboardInterrupt:
        return


@app.command(epilog=CANCEL_EPILOG)
@handle_errors
def cancel(
    directory: Path = typer.Argument(..., help="run or sweep directory (holds manifest.json)"),
    job: Optional[List[str]] = typer.Option(None, "--job", "-j", help="only these job ids / cell ids / array "
                                            "indices"),
    as_json: bool = typer.Option(False, "--json"),
):
    """Cancel the queued or running jobs of a submitted run or sweep.

    Slurm jobs get scancel, subprocess jobs SIGINT. The cancellation is recorded in the manifest; the run dir
    keeps its checkpoints, so submitting the same run again resumes it.
    """
    from igpo_kit.errors import ConfigError
    from igpo_kit.launch.manifest import MANIFEST_NAME, cancel as cancel_jobs, read_manifest
    from igpo_kit.launch.status import active

    if not (directory / MANIFEST_NAME).is_file():
        raise ConfigError(f"no {MANIFEST_NAME} in {directory}: only submitted runs/sweeps can be cancelled here "
                          "(stop an in-process run with Ctrl-C)")
    manifest = read_manifest(directory)
    wanted = [_select(manifest, j).job_id for j in job] if job else None
    live = [r.job_id for r in active(_records(manifest)) if wanted is None or r.job_id in wanted]
    if not live:
        done = {r.job_id: r.state for r in _records(manifest) if wanted is None or r.job_id in wanted}
        if as_json:
            out.print_json(json.dumps({"cancelled": [], "states": done}))
        else:
            err.print("nothing to cancel: " + ", ".join(f"{k} {v}" for k, v in done.items()), highlight=False)
        return
    if manifest.executor == "slurm" and wanted is None and len(live) == len(manifest.jobs):
        ids = cancel_jobs(manifest)  # whole arrays by their base id
    else:
        ids = cancel_jobs(manifest, live)
    if as_json:
        out.print_json(json.dumps({"cancelled": ids}))
    else:
        err.print(f"cancelled {', '.join(ids) or 'nothing'}" + (f" ({directory})" if ids else ""), highlight=False)
