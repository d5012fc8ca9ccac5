"""Submit the cells of a sweep to Slurm (``igpo-kit sweep SPEC --executor slurm``): one job array per resource
profile, a ``manifest.json`` in the sweep directory, and return (``wait=True`` shows a live table instead).

Each cell becomes a :class:`~igpo_kit.launch.job.Job` (text only: the cell's resolved config, bindings, run dir),
so a cell runs exactly as ``igpo-kit run`` would run it, resumes from its checkpoints when requeued, and writes
the same run record. Cells are grouped by (cluster, resources) profile; each group is one ``sbatch --array``
(``executor.batch()``) capped at ``array_parallelism`` running elements (``--max-parallel``). A group of one cell
is a plain job.

Which resources profile a cell gets: ``--resources``, else its arm's ``resources``, else the spec's
``resources``, else the one the base recipe names (``# igpo-kit: resources = NAME``), else ``eval`` for
evaluation cells and ``sweep_cell`` for the others.

Submitting a sweep again (``--resume SWEEP_DIR`` or the same spec into the same directory) submits only the
cells whose run directory lacks ``DONE`` and whose job from the previous submission is not still queued or
running; the manifest then lists every cell's latest job (earlier ids under ``extra.previous_jobs``).
"""

from __future__ import annotations

import functools
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from igpo_kit.errors import ConfigError
from igpo_kit.launch.manifest import MANIFEST_NAME, JobEntry, JobStatus, Manifest, job_records, read_manifest
from igpo_kit.launch.status import active

SUBMITIT_SUBDIR = "submitit"
CELL_RESOURCES = "sweep_cell"
RESOURCES_BY_JOB = {"evaluate": "eval"}


def cell_resources(sweep: Any, cell: Any, resources: str | None = None) -> str:
    """The resources profile of one planned cell (see the module docstring for the order)."""
    return spec_cell_resources(sweep.spec, cell.cell.arm, cell.job, resources)


def spec_cell_resources(spec: Any, arm_name: str | None, job: str | None, resources: str | None = None) -> str:
    """The resources profile of a cell of ``spec`` in arm ``arm_name`` running job kind ``job``."""
    if resources:
        return resources
    arm = next((a for a in spec.arms if a.name == arm_name), None)
    if arm is not None and getattr(arm, "resources", None):
        return arm.resources
    if spec.resources:
        return spec.resources
    from igpo_kit.launch.submit import recipe_resources

    return recipe_resources(spec.base_path) or RESOURCES_BY_JOB.get(job, CELL_RESOURCES)


def cell_processes(spec: Any, cluster: str | None = None, resources: str | None = None,
                   overrides: Sequence[str] = ()) -> Callable[[Any, Any], tuple[int, str]]:
    """``(cell, config) -> (processes, where from)``: the processes each cell's job will have under the Slurm
    profile it is submitted with (:func:`submit_sweep`'s choice), for the data checks of
    :func:`igpo_kit.sweep.run.plan`."""
    from igpo_kit.launch.profiles import load_profile
    from igpo_kit.launch.submit import profile_processes

    def processes(cell: Any, config: Any) -> tuple[int, str]:
        name = spec_cell_resources(spec, cell.arm, config.job, resources)
        return profile_processes(load_profile(cluster or spec.cluster, name, list(overrides)), "slurm")

    return processes


def previous_jobs(sweep_dir: str | Path) -> tuple[Manifest | None, dict[str, tuple[JobEntry, JobStatus]]]:
    """The sweep directory's ``manifest.json`` (None when absent or unreadable) and ``{run dir: (entry, state)}``
    of the jobs it lists (asks Slurm: sacct, else squeue, else files)."""
    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / MANIFEST_NAME).is_file():
        return None, {}
    try:
        old = read_manifest(sweep_dir)
    except Exception:  # noqa: BLE001 - an unreadable manifest is replaced
        return None, {}
    by_dir = {}
    for entry, rec in zip(old.jobs, job_records(old)):
        if entry.run_dir:
            by_dir[str(Path(entry.run_dir).absolute())] = (entry, rec)
    return old, by_dir


def active_cells(sweep_dir: str | Path) -> dict[str, JobStatus]:
    """``{run dir: status}`` of the cells whose Slurm job (from the last submission) is queued or running."""
    _, by_dir = previous_jobs(sweep_dir)
    live = {r.job_id for r in active([rec for _, rec in by_dir.values()])}
    return {d: rec for d, (_, rec) in by_dir.items() if rec.job_id in live}


def _abs(path: str | Path) -> str:
    return str(Path(path).absolute())


def submit_sweep(sweep: Any, *, cluster: str | None = None, resources: str | None = None,
                 overrides: Sequence[str] = (), max_parallel: int | None = None, dry_run: bool = False,
                 wait: bool = False, argv: Sequence[str] | None = None, console: Any = None,
                 poll_s: float = 5.0, write_scripts: bool = True) -> dict[str, Any]:
    """Submit the cells of a planned :class:`~igpo_kit.sweep.run.Sweep` that still need to run.

    ``cluster`` defaults to the spec's ``cluster``, then the default cluster; ``resources`` (one profile for every
    cell) to :func:`cell_resources`; ``overrides`` are ``-S key=value`` strings; ``max_parallel`` sets
    ``array_parallelism`` (after the overrides). ``dry_run``: print the sbatch script of each array to stdout
    (exactly what submitit writes; ``write_scripts=False``: only in the result) and touch nothing. Otherwise writes ``<sweep dir>/manifest.json`` and the
    sweep manifest (cells ``submitted`` with their job ids) and returns at once, or with ``wait`` shows a live
    table until every job ended and refreshes the cells' status from their run directories.

    Returns a JSON-able summary: ``groups`` (cluster, resources, profile summary, cells, job ids, array id,
    ``sbatch_script`` path or, for a dry run, text), ``skipped`` (done / still active cells), ``job_ids``,
    ``manifest``; with ``wait`` also ``states`` (``{job id: STATE}``).
    """
    from rich.console import Console

    from igpo_kit.launch.job import Job
    from igpo_kit.launch.profiles import load_profile
    from igpo_kit.launch.sbatch import render_profile
    from igpo_kit.launch.submit import _abs_plugins, make_executor, submit_calls
    from igpo_kit.sweep.run import cell_command, run_status

    console = console or Console(stderr=True)
    say = functools.partial(console.print, highlight=False, soft_wrap=True)
    if max_parallel is not None and max_parallel < 1:
        raise ConfigError(f"--max-parallel must be >= 1, got {max_parallel}")
    spec = sweep.spec
    sweep_dir = Path(sweep.dir)
    folder = sweep_dir.absolute() / SUBMITIT_SUBDIR / "%j"
    name = f"igpo-{spec.name}"
    cluster = cluster or spec.cluster
    extra_overrides = list(overrides) + ([f"array_parallelism={int(max_parallel)}"] if max_parallel else [])
    argv = list(sys.argv if argv is None else argv)

    old, by_dir = previous_jobs(sweep_dir)
    live_ids = {r.job_id for r in active([rec for _, rec in by_dir.values()])}
    todo, done, busy = [], [], {}
    for c in sweep.cells:
        c.status = run_status(Path(c.run_dir))
        prev = by_dir.get(_abs(c.run_dir))
        if c.status == "done":
            done.append(c)
        elif prev is not None and prev[1].job_id in live_ids:
            busy[c.id] = prev[1]
        else:
            todo.append(c)

    # group by profile, in cell order
    groups: dict[tuple[str | None, str], list[Any]] = {}
    for c in todo:
        groups.setdefault((cluster, cell_resources(sweep, c, resources)), []).append(c)
    profiles = {key: load_profile(key[0], key[1], extra_overrides) for key in groups}
    out: dict[str, Any] = {
        "executor": "slurm", "sweep_dir": str(sweep_dir), "name": spec.name,
        "skipped": {"done": [c.id for c in done], "active": {k: f"{r.job_id} {r.state}" for k, r in busy.items()}},
        "groups": [],
    }

    def describe_skipped() -> None:
        if done or busy:
            parts = [f"{len(done)} done"] if done else []
            if busy:
                parts.append(f"{len(busy)} still queued/running ("
                             + ", ".join(f"{k}: job {r.job_id} {r.state}" for k, r in list(busy.items())[:4])
                             + (", ..." if len(busy) > 4 else "") + ")")
            say(f"  not submitted: {'; '.join(parts)}")

    if dry_run:
        scripts = []
        for i, (key, cells) in enumerate(groups.items(), 1):
            profile = profiles[key]
            script = render_profile(profile, folder, name=name, array_size=len(cells) if len(cells) > 1 else None)
            scripts.append(script)
            out["groups"].append({"cluster": profile.cluster, "resources": profile.resources,
                                  "profile": profile.summary(), "cells": [c.id for c in cells],
                                  "array_parallelism": profile.array_parallelism, "sbatch_script": script})
            what = f"array of {len(cells)} cells, at most {profile.array_parallelism} at once" if len(cells) > 1 \
                else "1 cell"
            say(f"[bold]group {i}[/bold]: {what}; {profile.summary()}")
            for note in profile.notes:
                say(f"  [yellow]note[/yellow]: {note}")
        describe_skipped()
        if not groups:
            say("nothing to submit (dry run)")
        else:
            say("(dry run: the sbatch script" + ("s" if len(scripts) > 1 else "")
                + " submitit would write " + ("are" if len(scripts) > 1 else "is") + " on stdout; nothing was "
                "written, nothing submitted)", style="dim")
        for i, script in enumerate(scripts if write_scripts else [], 1):
            if len(scripts) > 1:
                sys.stdout.write(f"# ---- group {i} of {len(scripts)} ----\n")
            sys.stdout.write(script if script.endswith("\n") else script + "\n")
        sys.stdout.flush()
        return {**out, "dry_run": True}

    if not groups:
        say(f"nothing to submit: {len(done)} of {len(sweep.cells)} cells done"
            + (f", {len(busy)} still queued/running" if busy else ""))
        describe_skipped()
        out.update(job_ids=[], manifest=str(old.path) if old is not None and old.path else None)
        return out
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise ConfigError("sbatch/srun not found: submit from a Slurm login node (with SLURM_CONF set where "
                          "needed)", "--dry-run shows the scripts; --executor local|subprocess runs on this machine")

    plugins = _abs_plugins(list(sweep.plugins))
    new_entries: dict[str, JobEntry] = {}
    group_info = []
    first = None
    for key, cells in groups.items():
        profile = profiles[key]
        ex = make_executor("slurm", folder, profile, name=name)
        calls = [Job(config_text=c.config_text, bindings=list(c.cell.bindings), run_dir=_abs(c.run_dir),
                     plugins=plugins, name=f"{spec.name}/{c.id}", argv=cell_command(c, sweep_dir, sweep.plugins))
                 for c in cells]
        try:
            _, sub = submit_calls(calls, executor=ex, run_dirs=[_abs(c.run_dir) for c in cells], profile=profile,
                                  kind="sweep", name=spec.name)
        except Exception as exc:
            if new_entries:  # keep a record of what is already queued
                say(f"[red]submission of group {key} failed[/red]; {len(new_entries)} cells were submitted before")
                _save(sweep, old, new_entries, group_info, first, folder, argv, by_dir)
            raise ConfigError(f"sbatch failed for {len(cells)} cells ({profile.summary()}): {exc}") from None
        first = first or sub
        for entry, c in zip(sub.jobs, cells):
            entry.cell = c.id
            new_entries[c.id] = entry
        array_id = sub.jobs[0].job_id.split("_", 1)[0]
        group_info.append({"cluster": profile.cluster, "resources": profile.resources, "profile": profile.summary(),
                           "array_parallelism": profile.array_parallelism, "cells": [c.id for c in cells],
                           "job_ids": sub.job_ids, "array_id": array_id if len(cells) > 1 else None,
                           "sbatch_script": sub.sbatch_script, "notes": list(profile.notes)})
    manifest = _save(sweep, old, new_entries, group_info, first, folder, argv, by_dir)
    for c in sweep.cells:
        if c.id in new_entries:
            c.status, c.job_id = "submitted", new_entries[c.id].job_id
            c.error = c.started = c.finished = c.seconds = c.returncode = None
            c.log = _rel(new_entries[c.id].stderr, sweep_dir)
        elif c.id in busy:
            c.job_id = busy[c.id].job_id
        elif _abs(c.run_dir) in by_dir:
            c.job_id = by_dir[_abs(c.run_dir)][0].job_id
    sweep.executor = "slurm"
    sweep.launch = {"cluster": cluster, "resources": resources, "overrides": list(overrides),
                    "max_parallel": max_parallel}
    sweep.save()

    n = len(new_entries)
    arrays = sum(1 for g in group_info if g["array_id"])
    singles = len(group_info) - arrays
    how = " and ".join(x for x in (f"{arrays} job array{'s' if arrays != 1 else ''}" if arrays else "",
                                   f"{singles} job{'s' if singles != 1 else ''}" if singles else "") if x)
    say(f"[bold]submitted[/bold] sweep {spec.name}: {n} cell{'s' if n != 1 else ''} as {how}")
    for g in group_info:
        what = (f"array {g['array_id']} ({len(g['cells'])} cells, at most {g['array_parallelism']} at once)"
                if g["array_id"] else f"job {g['job_ids'][0]} (1 cell)")
        say(f"  {what}: {g['profile']}")
        for note in g["notes"]:
            say(f"    [yellow]note[/yellow]: {note}")
        say(f"    sbatch script: {g['sbatch_script']}", style="dim")
    describe_skipped()
    say(f"  manifest: {manifest.path}")
    say(f"  watch: igpo-kit status {sweep_dir}  |  igpo-kit logs {sweep_dir} --job CELL  |  "
        f"igpo-kit cancel {sweep_dir}")
    out["groups"] = group_info
    out.update(job_ids=[e.job_id for e in new_entries.values()], manifest=str(manifest.path),
               cells={cid: e.job_id for cid, e in new_entries.items()})
    if not wait:
        return out
    from igpo_kit.launch.status import wait as wait_for

    try:
        records = wait_for(manifest, console=console, poll_s=poll_s)
    except KeyboardInterrupt:
        say(f"stopped waiting; the jobs keep running (igpo-kit status {sweep_dir})")
        raise
    finally:
        for c in sweep.cells:
            st = run_status(Path(c.run_dir))
            if st in ("done", "failed"):
                c.status = st
        sweep.save()
    out["states"] = {r.job_id: r.state for r in records}
    return out


def _rel(path: str | None, root: Path) -> str | None:
    if not path:
        return None
    try:
        return str(Path(path).relative_to(root.absolute()))
    except ValueError:
        return path


def _save(sweep: Any, old: Manifest | None, new_entries: dict[str, JobEntry], groups: list[dict[str, Any]],
          first: Manifest | None, folder: Path, argv: list[str],
          by_dir: dict[str, tuple[JobEntry, JobStatus]]) -> Manifest:
    """Write ``<sweep dir>/manifest.json``: every cell's latest job (new ones, else the previous submission's)."""
    entries: list[JobEntry] = []
    kept: set[str] = set()
    for c in sweep.cells:
        if c.id in new_entries:
            entries.append(new_entries[c.id])
            continue
        prev = by_dir.get(_abs(c.run_dir))
        if prev is not None:
            entry = prev[0]
            entry.cell = entry.cell or c.id
            entries.append(entry)
            kept.add(entry.job_id)
    previous: list[str] = []
    if old is not None:
        previous = [*old.extra.get("previous_jobs", []), *[j for j in old.job_ids if j not in kept]]
    profile = first.profile if first is not None else {}
    manifest = Manifest(
        executor="slurm", jobs=entries, folder=str(folder), kind="sweep", name=sweep.spec.name,
        cluster=first.cluster if first is not None else None, resources=first.resources if first is not None else None,
        profile=profile, sbatch_script=first.sbatch_script if first is not None else None,
        cancelled={j: t for j, t in (old.cancelled.items() if old is not None else ()) if j in kept},
        extra={"groups": groups, "command": argv, "sweep_manifest": "sweep_manifest.json",
               "submissions": int((old.extra.get("submissions", 1) if old is not None else 0)) + 1,
               **({"previous_jobs": previous} if previous else {})})
    manifest.save(Path(sweep.dir) / MANIFEST_NAME)
    return manifest


__all__ = ["CELL_RESOURCES", "active_cells", "cell_resources", "previous_jobs", "submit_sweep"]
