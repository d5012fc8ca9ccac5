"""``igpo-kit``: run, validate, show, ls, describe, grade (and the launch / sweep / report commands).

Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error. ``IGPO_KIT_DEBUG=1`` shows tracebacks.
Results go to stdout (``--json`` for machines); progress and messages go to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from igpo_kit.cli.app import (BIND, GIN_FILE, PLUGIN, Executor, app, err, handle_errors, out, print_table,
                              stdout_to_stderr)

if __name__ == "__main__":  # `python -m igpo_kit.cli.main`: run the imported module, so commands register once
    from igpo_kit.cli.main import main as _main

    _main()
    raise SystemExit(0)


@app.command()
@handle_errors
def run(
    recipe: str = typer.Argument(..., help="recipe file or name under recipes/ (e.g. tiny/eval.gin)"),
    bind: Optional[List[str]] = BIND,
    gin_file: Optional[List[str]] = GIN_FILE,
    plugin: Optional[List[str]] = PLUGIN,
    name: Optional[str] = typer.Option(None, help="run name (default: the recipe's file name)"),
    runs_dir: Optional[Path] = typer.Option(None, help="root of run directories (default ./runs or $IGPO_KIT_RUNS)"),
    fresh: bool = typer.Option(False, help="start a new run even if this config already ran"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate and print the plan; run nothing, write nothing"),
    executor: Executor = typer.Option(Executor.local, help="local (in-process) | subprocess (submitit local) | slurm"),
    cluster: Optional[str] = typer.Option(None, help="cluster profile (slurm/clusters/NAME.toml)"),
    resources: Optional[str] = typer.Option(None, help="resource profile (slurm/resources/NAME.toml)"),
    slurm_set: Optional[List[str]] = typer.Option(None, "-S", help="Slurm parameter override KEY=VALUE"),
    wait: bool = typer.Option(False, help="with slurm/subprocess: wait and show the job's state"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
):
    """Run a recipe. Re-running the same config resumes its run directory."""
    from igpo_kit.launch.submit import planned_processes
    from igpo_kit.runner import prepare, run_local

    executor = Executor(executor).value

    def processes(config):  # the launch plan's processes, for the data check (before anything is written)
        return planned_processes(config.job, config.recipe, executor, cluster, resources, slurm_set or [])

    plan = prepare(recipe, gin_file or [], bind or [], plugin or [], runs_dir=runs_dir, name=name, fresh=fresh,
                   processes=processes)
    if dry_run:
        from igpo_kit.launch.memory import memory_lines

        for style, line in memory_lines(plan, cluster, resources, slurm_set or [], executor):
            err.print(line, style=style or None, highlight=False, markup=False, soft_wrap=True)
    if executor != "local":
        from igpo_kit.launch.submit import submit_run

        result = submit_run(plan, executor=executor, cluster=cluster, resources=resources,
                            overrides=slurm_set or [], dry_run=dry_run, wait=wait)
        if as_json:
            out.print_json(json.dumps(result, default=str))
        return
    if dry_run:
        err.print(f"[bold]job[/bold] {plan.config.job}   [bold]run dir[/bold] {plan.run_dir}  (dry run: nothing written)")
        out.print(plan.config.text, highlight=False, markup=False)
        return
    err.print(f"[bold]{plan.config.job}[/bold] -> {plan.run_dir}")
    with stdout_to_stderr():
        result = run_local(plan, argv=sys.argv)
    if as_json:
        out.print_json(json.dumps(result, default=str))
    else:
        err.print(f"[green]done[/green]: {plan.run_dir}")


@app.command()
@handle_errors
def validate(
    recipes: List[str] = typer.Argument(..., help="recipes to validate"),
    bind: Optional[List[str]] = BIND,
    gin_file: Optional[List[str]] = GIN_FILE,
    plugin: Optional[List[str]] = PLUGIN,
    executor: Executor = typer.Option(Executor.local, help="check against the processes of this launch: local "
                                      "($WORLD_SIZE under torchrun / accelerate launch, else 1) | subprocess | slurm"),
    cluster: Optional[str] = typer.Option(None, help="cluster profile (slurm/clusters/NAME.toml)"),
    resources: Optional[str] = typer.Option(None, help="resource profile (slurm/resources/NAME.toml)"),
    slurm_set: Optional[List[str]] = typer.Option(None, "-S", help="Slurm parameter override KEY=VALUE"),
):
    """Parse and check recipes (gin errors, components, types, ranges, unused macros; the data against the model's
    maximum length and the planned processes) without running or writing anything."""
    from igpo_kit import config as cfg
    from igpo_kit.errors import ConfigError
    from igpo_kit.launch.submit import planned_processes
    from igpo_kit.runner import load_plugins

    load_plugins(plugin or [])
    executor = Executor(executor).value
    problems = []
    for r in recipes:
        try:
            c = cfg.parse(r, gin_files=gin_file or [], bindings=bind or [])
            from igpo_kit.config.preflight import data_problems

            data = data_problems(*planned_processes(c.job, c.recipe, executor, cluster, resources, slurm_set or []))
            if data:
                raise ConfigError(*data)
            err.print(f"[green]ok[/green] {r} (job: {c.job})")
        except ConfigError as exc:
            problems += [f"{r}: {line}" if not line.startswith(str(r)) else line for line in exc.lines]
    if problems:
        raise ConfigError(*problems)


@app.command()
@handle_errors
def show(
    target: str = typer.Argument(..., help="a recipe, or a run directory"),
    bind: Optional[List[str]] = BIND,
    gin_file: Optional[List[str]] = GIN_FILE,
    plugin: Optional[List[str]] = PLUGIN,
    operative: bool = typer.Option(False, help="for a run: the operative config (what was actually used)"),
):
    """Print the resolved config of a recipe (with overrides) or of a run directory."""
    p = Path(target)
    if p.is_dir() and (p / "config.gin").exists():
        name = "operative_config.gin" if operative else "config.gin"
        if not (p / name).exists():
            from igpo_kit.errors import ConfigError

            raise ConfigError(f"{p / name} does not exist (the run has not finished)")
        out.print((p / name).read_text(), highlight=False, markup=False)
        return
    from igpo_kit import config as cfg
    from igpo_kit.runner import load_plugins

    load_plugins(plugin or [])
    out.print(cfg.parse(target, gin_files=gin_file or [], bindings=bind or []).text, highlight=False, markup=False)


@app.command("ls")
@handle_errors
def ls(
    what: str = typer.Argument(..., help="recipes | components"),
    kind: Optional[str] = typer.Option(None, help="only this component kind"),
    plugin: Optional[List[str]] = PLUGIN,
    as_json: bool = typer.Option(False, "--json"),
):
    """List recipes or registered components (reads the catalog; imports no torch)."""
    from igpo_kit.errors import ConfigError

    if what == "recipes":
        from igpo_kit import assets
        from igpo_kit.config import recipe_names

        names = recipe_names()
        if as_json:
            out.print_json(json.dumps(names))
            return
        root = assets.path("recipes")
        from rich.table import Table

        t = Table("recipe", "what it is")
        for n in names:
            t.add_row(n, _recipe_title(root / n))
        print_table(t)
        return
    if what != "components":
        raise ConfigError(f"unknown listing {what!r}: use `igpo-kit ls recipes` or `igpo-kit ls components`")
    from igpo_kit.registry import KINDS, load_plugin, registry

    for p in plugin or []:
        load_plugin(p)
    kinds = [kind] if kind else list(KINDS)
    rows = [(e.kind, e.name, e.summary, e.origin) for k in kinds for e in registry(k).entries()]
    if as_json:
        out.print_json(json.dumps([dict(kind=a, name=b, summary=c, origin=d) for a, b, c, d in rows]))
        return
    from rich.table import Table

    t = Table("kind", "name", "summary", "origin")
    for r in rows:
        t.add_row(*r)
    print_table(t)


def _recipe_title(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


@app.command()
@handle_errors
def describe(
    kind: str = typer.Argument(..., help="component kind (sampler, grader, ...)"),
    name: str = typer.Argument(..., help="component name"),
    plugin: Optional[List[str]] = PLUGIN,
    as_json: bool = typer.Option(False, "--json"),
):
    """Signature, defaults and docstring of a component, with a gin snippet."""
    import inspect

    from igpo_kit.registry import load_plugin, registry

    for p in plugin or []:
        load_plugin(p)
    e = registry(kind).entry(name)
    fn = e.load()
    sig = inspect.signature(fn)
    params = {p.name: (None if p.default is inspect.Parameter.empty else p.default) for p in sig.parameters.values()}
    if as_json:
        out.print_json(json.dumps({"kind": kind, "name": name, "target": e.target_path, "origin": e.origin,
                                   "signature": str(sig), "defaults": params, "doc": inspect.getdoc(fn)},
                                  default=repr))
        return
    out.print(f"[bold]{kind}.{name}[/bold]  ({e.target_path}; {e.origin})")
    out.print(f"{name}{sig}", highlight=False, markup=False)
    if e.paper:
        out.print(f"paper: {e.paper}")
    out.print("")
    out.print(inspect.getdoc(fn) or "(no docstring)", highlight=False, markup=False)
    out.print("\ngin:", highlight=False)
    out.print(f"  from igpo_kit.components import {kind}", highlight=False, markup=False)
    for p, d in params.items():
        out.print(f"  {kind}.{name}.{p} = {d!r}", highlight=False, markup=False)


def main():  # console script
    app()


# the other command modules register on the same app; imported last so `--help` lists this module's commands first
from igpo_kit.cli import experiments, grade_cmd, launch_cmds  # noqa: E402,F401
