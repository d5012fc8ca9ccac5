"""``igpo-kit sweep`` and ``igpo-kit report``: run a grid of recipe variants, then tabulate and plot the runs.

Registered on the main Typer app (``from igpo_kit.cli import experiments`` at the bottom of main.py). Heavy
imports (gin, torch, matplotlib) happen inside the commands.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import List, Optional

import typer

from igpo_kit.cli.app import BIND, GIN_FILE, PLUGIN, Executor, app, err, handle_errors, out, print_table

EXIT_FAILED_CELLS = 4

SWEEP_EPILOG = """[bold]Examples[/bold]

  igpo-kit sweep recipes/ablations/hint_ratio.toml --dry-run
  igpo-kit sweep tiny/ablations/entropy_tau.toml --max-parallel 2
  igpo-kit sweep tiny/igpo.gin --axis 'SEED=0,1,2' --axis 'entry.rl.hint_ratio_high=0.6,1.0'
  igpo-kit sweep --resume runs/sweeps/hint_ratio
  igpo-kit sweep recipes/ablations/hint_ratio.toml --executor slurm --cluster mysite --max-parallel 4
  igpo-kit sweep recipes/ablations/hint_ratio.toml --executor slurm --dry-run    # the sbatch array script
  igpo-kit status runs/sweeps/hint_ratio  |  igpo-kit cancel runs/sweeps/hint_ratio --job CELL_ID
"""

REPORT_EPILOG = """[bold]Examples[/bold]

  igpo-kit report runs/sweeps/hint_ratio --baseline no_hints
  igpo-kit report runs/sweeps/eval_temperature --metric pass@5 --out reports/temperature
  igpo-kit report runs/igpo/547a0e9c47
"""


def _cells_table(sweep, title: str):
    from rich.table import Table

    from igpo_kit.sweep import short_keys

    keys = sweep.spec.axis_keys
    short = short_keys(keys)
    t = Table(title=title)
    t.add_column("#", justify="right")
    t.add_column("cell")
    if sweep.spec.arms:
        t.add_column("arm")
    for k in keys:
        t.add_column(short[k], justify="right")
    t.add_column("status")
    t.add_column("run dir")
    colors = {"done": "green", "failed": "red", "running": "yellow", "incomplete": "yellow"}
    for i, c in enumerate(sweep.cells, 1):
        row = [str(i), c.id]
        if sweep.spec.arms:
            row.append(c.cell.arm or "")
        row += [c.cell.keys.get(k, "") for k in keys]
        color = colors.get(c.status)
        row.append(f"[{color}]{c.status}[/{color}]" if color else c.status)
        try:
            row.append(str(Path(c.run_dir).relative_to(sweep.dir)))
        except ValueError:
            row.append(str(c.run_dir))
        t.add_row(*row)
    return t


def _load_spec(spec_arg: Optional[str], axis: list[str], bind: list[str], gin_file: list[str],
               resume: Optional[Path]):
    """(spec, sweep_dir or None, plugins from the manifest or None)."""
    from igpo_kit.errors import ConfigError
    from igpo_kit.sweep import MANIFEST, Spec, add_axes, find_spec, inline_spec, load_spec, read_manifest

    if resume is not None and spec_arg is not None:
        raise ConfigError("give a spec (or recipe) or --resume SWEEP_DIR, not both: rerunning a spec into its "
                          "sweep directory already runs only the cells without DONE")
    if spec_arg is not None and Path(spec_arg).is_dir() and (Path(spec_arg) / MANIFEST).is_file():
        resume, spec_arg = Path(spec_arg), None
    if resume is not None:
        if axis or bind or gin_file:
            raise ConfigError("--resume reruns the recorded sweep as it was; to change it, edit the spec and run it "
                              "again (--axis/-b/-f are not taken with --resume)")
        m = read_manifest(resume)
        spec = Spec.from_dict(m["spec"])
        if not Path(spec.base_path).is_file():  # the checkout moved: find the base recipe again by name
            from igpo_kit.sweep.spec import resolve_file

            found = resolve_file(spec.base, Path(spec.source).parent if spec.source else None)
            spec.base_path = str(found) if found else spec.base_path
        return spec, resume, list(m.get("plugins") or [])
    if spec_arg is None:
        raise ConfigError("give a sweep spec (.toml), a recipe with --axis KEY=v1,v2, or --resume SWEEP_DIR")
    is_spec = spec_arg.endswith(".toml")
    if not is_spec and not spec_arg.endswith(".gin"):
        try:
            find_spec(spec_arg)
            is_spec = True
        except ConfigError as exc:
            from igpo_kit.sweep.spec import resolve_file

            if resolve_file(spec_arg, None) is None:
                hint = exc.lines[0].split(";", 1)[1] if ";" in exc.lines[0] else ""
                raise ConfigError(f"neither a sweep spec nor a recipe: {spec_arg}" + (f";{hint}" if hint else "")) \
                    from None
    if is_spec:
        spec = load_spec(find_spec(spec_arg))
        if axis:
            spec = add_axes(spec, axis)
        if bind:
            spec.bindings = spec.bindings + list(bind)
        if gin_file:
            from igpo_kit.sweep.spec import resolve_file

            missing = [f for f in gin_file if resolve_file(f, None) is None]
            if missing:
                raise ConfigError(*[f"gin file not found: {f}" for f in missing])
            spec.gin_files = spec.gin_files + [str(resolve_file(f, None)) for f in gin_file]
        return spec, None, None
    return inline_spec(spec_arg, axis, bindings=bind, gin_files=gin_file), None, None


@app.command(epilog=SWEEP_EPILOG)
@handle_errors
def sweep(
    spec: Optional[str] = typer.Argument(None, help="sweep spec (.toml; path or name under recipes/), or a recipe "
                                                    "with --axis"),
    axis: Optional[List[str]] = typer.Option(None, "--axis", "-a", help="KEY=v1,v2,... (gin literals; the "
                                             "product of all --axis options; repeatable)"),
    bind: Optional[List[str]] = BIND,
    gin_file: Optional[List[str]] = GIN_FILE,
    plugin: Optional[List[str]] = PLUGIN,
    sweep_dir: Optional[Path] = typer.Option(None, "--sweep-dir", help="sweep directory (default "
                                             "runs/sweeps/<spec name>, under $IGPO_KIT_RUNS if set)"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="rerun (or resubmit) the recorded sweep of this "
                                          "sweep directory: only cells whose run dir lacks DONE"),
    dry_run: bool = typer.Option(False, "--dry-run", help="expand and validate every cell, print them (slurm: "
                                 "and the sbatch scripts); write nothing, run nothing"),
    max_parallel: Optional[int] = typer.Option(None, "--max-parallel", "-j", help="cells at once: local, >1 runs "
                                               "subprocesses (default 1); slurm, the job array's parallelism "
                                               "limit (default: the resources profile's array_parallelism)"),
    executor: Optional[Executor] = typer.Option(None, help="local (default; in this process, or subprocesses with "
                                           "--max-parallel) | subprocess | slurm (one job array per resources "
                                           "profile; returns at once). --resume of a Slurm sweep defaults to slurm"),
    cluster: Optional[str] = typer.Option(None, help="slurm: cluster profile (default: the spec's cluster, else "
                                          "the default cluster)"),
    resources: Optional[str] = typer.Option(None, help="slurm: resources profile of every cell (default: the "
                                            "arm's or spec's resources, else eval / sweep_cell by job kind)"),
    slurm_set: Optional[List[str]] = typer.Option(None, "-S", help="slurm: profile override KEY=VALUE"),
    wait: bool = typer.Option(False, help="slurm: stay and show a live table until every job ended"),
    poll: float = typer.Option(5.0, help="slurm --wait: seconds between status checks"),
    as_json: bool = typer.Option(False, "--json", help="print the cells (and their status) as JSON"),
):
    """Run a grid of recipe variants: every cell is validated first; finished cells are never rerun.

    With --executor slurm the cells are submitted as one job array per resources profile, a manifest.json is
    written to the sweep directory and the command returns (igpo-kit status|logs|cancel SWEEP_DIR watch it).

    Exit codes: 0 all cells done (slurm: submitted; with --wait: all done), 2 invalid spec or cell (nothing ran),
    4 some cells failed.
    """
    from igpo_kit.errors import ConfigError
    from igpo_kit.sweep import default_sweep_dir, plan, run_cells
    from igpo_kit.sweep import read_manifest as read_sweep_manifest

    executor = Executor(executor).value if executor is not None else None
    if max_parallel is not None and max_parallel < 1:
        raise ConfigError(f"--max-parallel must be >= 1, got {max_parallel}")
    the_spec, resume_dir, recorded_plugins = _load_spec(spec, axis or [], bind or [], gin_file or [], resume)
    launch: dict = {}
    if resume_dir is not None and executor in (None, "slurm"):
        recorded = read_sweep_manifest(resume_dir)
        if recorded.get("executor") == "slurm":
            executor, launch = "slurm", dict(recorded.get("launch") or {})
    executor = executor or "local"
    slurm_only = [o for o, v in (("--cluster", cluster), ("--resources", resources), ("-S", slurm_set),
                                 ("--wait", wait)) if v]
    if executor != "slurm" and slurm_only:
        raise ConfigError(f"{', '.join(slurm_only)} only apply to --executor slurm")
    if executor == "slurm":
        cluster = cluster or launch.get("cluster")
        resources = resources or launch.get("resources")
        slurm_set = list(slurm_set or launch.get("overrides") or [])
        max_parallel = max_parallel if max_parallel is not None else launch.get("max_parallel")
    plugins = list(plugin or []) or (recorded_plugins or [])
    sdir = Path(sweep_dir) if sweep_dir is not None else (resume_dir or default_sweep_dir(the_spec))
    t0 = time.time()
    processes = None
    if executor == "slurm":  # each cell's data is checked against the processes of the profile it is submitted with
        from igpo_kit.launch.sweep import cell_processes

        processes = cell_processes(the_spec, cluster, resources, slurm_set)
    sw = plan(the_spec, sdir, plugins, processes=processes)
    local_parallel = max_parallel or 1
    if executor != "slurm":
        sw.executor = executor if local_parallel == 1 or executor == "subprocess" else "local-subprocess"
    counts = sw.counts()
    todo = [c for c in sw.cells if c.status != "done"]
    verb = "to submit" if executor == "slurm" else "to run"
    title = f"sweep {the_spec.name}: {len(sw.cells)} cells ({counts.get('done', 0)} done, {len(todo)} {verb})"
    slurm_dry = executor == "slurm" and dry_run
    if not as_json:
        (err if slurm_dry else out).print(_cells_table(sw, title))
    elif not slurm_dry and executor != "slurm":
        out.print_json(json.dumps(sw.to_dict(), default=str))
    err.print(f"validated {len(sw.cells)} cells in {time.time() - t0:.1f} s; sweep dir {sdir}", soft_wrap=True)
    if executor == "slurm":
        _sweep_slurm(sw, sdir, cluster=cluster, resources=resources, overrides=slurm_set, max_parallel=max_parallel,
                     dry_run=dry_run, wait=wait, poll=poll, as_json=as_json)
        return
    if dry_run:
        err.print("(dry run: nothing written, nothing run)")
        return
    from igpo_kit.launch.sweep import active_cells

    busy = active_cells(sdir)
    clash = [(c, busy[str(Path(c.run_dir).absolute())]) for c in todo if str(Path(c.run_dir).absolute()) in busy]
    if clash:
        raise ConfigError(*[f"cell {c.id} is still {r.state} on Slurm (job {r.job_id})" for c, r in clash[:5]],
                          f"wait for it (igpo-kit status {sdir}) or cancel it (igpo-kit cancel {sdir}) before "
                          "running the sweep here")
    sw.save()
    total = len(todo)
    done_n = [0]

    def on_update(c):
        sw.save()
        if c.status == "running":
            done_n[0] += 1
            err.print(f"[bold][{done_n[0]}/{total}][/bold] {c.label} [dim]({c.id})[/dim] -> {c.run_dir}",
                      highlight=False, soft_wrap=True)
        elif c.status == "done":
            err.print(f"[green]done[/green] {c.id} in {c.seconds:.1f} s", highlight=False, soft_wrap=True)
        elif c.status == "failed":
            log = f" (log: {sdir / c.log})" if c.log else ""
            err.print(f"[red]failed[/red] {c.id}: {c.error}{log}", highlight=False, soft_wrap=True)

    try:
        run_cells(sw.cells, executor=executor, max_parallel=local_parallel, sweep_dir=sdir, plugins=plugins,
                  on_update=on_update)
    finally:
        sw.save()
    counts = sw.counts()
    failed = [c for c in sw.cells if c.status != "done"]
    err.print(f"sweep {the_spec.name}: {counts.get('done', 0)}/{len(sw.cells)} cells done"
              + (f", {len(failed)} failed" if failed else "") + f"; manifest {sw.manifest_path}", soft_wrap=True)
    if failed:
        err.print(f"rerun the failed cells with: igpo-kit sweep --resume {sdir}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED_CELLS)


def _sweep_slurm(sw, sdir: Path, *, cluster, resources, overrides, max_parallel, dry_run: bool, wait: bool,
                 poll: float, as_json: bool) -> None:
    """``igpo-kit sweep --executor slurm``: submit (or preview) the job arrays; exit 4 after --wait when cells
    did not finish."""
    from igpo_kit.launch.sweep import submit_sweep

    if not dry_run:
        sw.save()  # the sweep manifest first: the cells' run dirs are known even if sbatch fails
    result = submit_sweep(sw, cluster=cluster, resources=resources, overrides=overrides or [],
                          max_parallel=max_parallel, dry_run=dry_run, wait=wait, console=err, poll_s=poll,
                          write_scripts=not as_json)
    if as_json:
        out.print_json(json.dumps({**sw.to_dict(), "slurm": result}, default=str))
    if dry_run or not wait:
        return
    failed = [c for c in sw.cells if c.status != "done"]
    err.print(f"sweep {sw.spec.name}: {len(sw.cells) - len(failed)}/{len(sw.cells)} cells done"
              + (f", {len(failed)} not done" if failed else "") + f"; manifest {sw.manifest_path}", soft_wrap=True)
    if failed:
        err.print(f"see `igpo-kit status {sdir}`; resubmit the missing cells with: igpo-kit sweep --resume {sdir}",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED_CELLS)


@app.command(epilog=REPORT_EPILOG)
@handle_errors
def report(
    path: Path = typer.Argument(..., help="a sweep directory, a run directory, or a folder of run directories"),
    baseline: Optional[str] = typer.Option(None, help="method or arm to compute deltas against (default: the "
                                           "spec's baseline)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="where to write report.md, *.csv, *.png "
                                           "(default PATH/report)"),
    metric: Optional[str] = typer.Option(None, help="report this eval metric where present (e.g. pass@5); "
                                         "default pass@1, or avg@n for n samples"),
    last: int = typer.Option(10, help="training metrics: mean of the last N logged steps"),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="write PNG plots"),
    as_json: bool = typer.Option(False, "--json", help="print the tables as JSON"),
):
    """Paper-style tables (methods x benchmarks, mean ± stderr over seeds, deltas) and plots of runs or a sweep."""
    from dataclasses import asdict

    from igpo_kit.report import build_report, to_rich

    rep = build_report(path, out_dir=out_dir, baseline=baseline, metric=metric, last=last, plots=plots)
    if as_json:
        out.print_json(json.dumps({k: asdict(t) for k, t in rep.tables.items()} | {
            "files": [str(f) for f in rep.files]}, default=str))
    else:
        for t in rep.tables.values():
            print_table(to_rich(t))
        if not rep.tables:
            err.print("no metrics found (no metrics.jsonl with steps, no summary.json)")
    if rep.meta.get("missing"):
        err.print(f"{len(rep.meta['missing'])} cells have no run directory yet")
    err.print(f"wrote {', '.join(str(f) for f in rep.files)}", highlight=False, soft_wrap=True)
