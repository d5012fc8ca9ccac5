"""Create a submitit executor from a profile and submit callables (one job, or one array via ``batch()``),
recording a :class:`~igpo_kit.launch.manifest.Manifest`; :func:`submit_run` is ``igpo-kit run --executor
subprocess|slurm``."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

import submitit

from igpo_kit.errors import ConfigError
from igpo_kit.launch.manifest import Manifest, from_jobs
from igpo_kit.launch.profiles import Profile

EXECUTORS = ("slurm", "local", "debug")


def make_executor(kind: str, folder: str | os.PathLike, profile: Profile | None = None, *,
                  name: str | None = None, **parameters: Any) -> submitit.AutoExecutor:
    """``submitit.AutoExecutor(folder, cluster=kind)`` with the profile's parameters (plus ``parameters``,
    which win). ``folder`` may contain ``%j``; on Slurm it must be on a filesystem the nodes share."""
    if kind not in EXECUTORS:
        raise ConfigError(f"unknown executor {kind!r}; expected one of {', '.join(EXECUTORS)}")
    ctor = profile.executor_kwargs() if profile is not None else {}
    ex = submitit.AutoExecutor(folder=str(folder), cluster=kind, **ctor)
    params = profile.update_parameters(name=name) if profile is not None else ({"name": name} if name else {})
    params.update(parameters)
    if params:
        ex.update_parameters(**params)
    return ex


def submit_calls(calls: Sequence[Callable[[], Any]], *, executor: submitit.AutoExecutor,
                 run_dirs: Sequence[str | os.PathLike | None] | None = None, profile: Profile | None = None,
                 manifest_path: str | os.PathLike | None = None, kind: str = "run", name: str = "",
                 extra: dict[str, Any] | None = None) -> tuple[list[Any], Manifest]:
    """Submit each zero-argument callable (e.g. a :class:`~igpo_kit.launch.job.Job`); several go as one job
    array (``executor.batch()``: one ``sbatch --array``, capped by ``array_parallelism``). Writes
    ``manifest.json`` when ``manifest_path`` (a file or directory) is given."""
    if not calls:
        raise ValueError("nothing to submit")
    if run_dirs is not None and len(run_dirs) != len(calls):
        raise ValueError("run_dirs must have one entry per call")
    if len(calls) == 1:
        jobs = [executor.submit(calls[0])]
    else:
        with executor.batch():
            jobs = [executor.submit(c) for c in calls]
    manifest = from_jobs(jobs, executor=executor.cluster, folder=str(executor.folder), run_dirs=run_dirs,
                         kind=kind, name=name, cluster=profile.cluster if profile else None,
                         resources=profile.resources if profile else None,
                         profile=profile.to_dict() if profile else {}, extra=dict(extra or {}))
    if manifest_path is not None:
        manifest.save(Path(manifest_path))
    return jobs, manifest


# ---------------------------------------------------------------------------------------------------------------
# igpo-kit run --executor subprocess|slurm

#: ``--executor`` names of the CLI -> submitit cluster names
CLI_EXECUTORS = {"subprocess": "local", "slurm": "slurm"}
#: resources profile a job kind uses when ``--resources`` is not given (Slurm); other kinds use ``tiny``
RESOURCES_BY_JOB = {"rl": "rl", "sft": "sft", "evaluate": "eval", "rewrite": "rewrite"}
#: ``--executor subprocess`` runs on this machine: one node, one task, at most one GPU unless told otherwise
SUBPROCESS_RESOURCES = "tiny"
SUBMITIT_SUBDIR = "submitit"


_RECIPE_DIRECTIVE = re.compile(r"^#\s*igpo-kit:\s*resources\s*=\s*['\"]?([A-Za-z0-9_.\-/]+)['\"]?\s*$")


def recipe_resources(recipe: str | os.PathLike | None) -> str | None:
    """The resources profile a recipe names in a leading comment line ``# igpo-kit: resources = NAME`` (among the
    comment lines before the first statement), else None."""
    if not recipe:
        return None
    try:
        from igpo_kit import assets

        path = assets.resolve_recipe(recipe)
        lines = path.read_text().splitlines() if path.is_file() else []
    except OSError:
        return None
    for line in lines:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break
        m = _RECIPE_DIRECTIVE.match(stripped)
        if m:
            return m.group(1)
    return None


def default_resources(job: str | None, executor: str = "slurm") -> str:
    """The resources profile of a job kind: ``rl`` -> ``rl``, ``sft`` -> ``sft``, ``evaluate`` -> ``eval``,
    ``rewrite`` -> ``rewrite`` on Slurm (paper scale: 8 nodes x 8 GPUs for training); ``tiny`` for ``--executor subprocess``."""
    if executor in ("subprocess", "local"):
        return SUBPROCESS_RESOURCES
    return RESOURCES_BY_JOB.get(job or "", "tiny")


def launch_profile(job: str | None, recipe: str | os.PathLike | None, executor: str = "slurm",
                   cluster: str | None = None, resources: str | None = None, overrides: Sequence[str] = ()) -> Profile:
    """The resources profile a job is launched with: ``resources``, else (Slurm) the one the recipe names
    (:func:`recipe_resources`), else :func:`default_resources` of the job kind; ``overrides`` are ``-S`` strings.
    ``--executor subprocess`` runs on this machine: a profile of several nodes is refused."""
    from igpo_kit.launch.profiles import load_profile

    if resources is None and executor == "slurm":
        resources = recipe_resources(recipe)
    profile = load_profile(cluster, resources or default_resources(job, executor), list(overrides))
    if executor == "subprocess" and profile.nodes > 1:
        raise ConfigError(f"--executor subprocess runs on this machine; resources {profile.resources!r} asks for "
                          f"{profile.nodes} nodes", "use -S nodes=1, or --executor slurm")
    return profile


def profile_processes(profile: Profile, executor: str) -> tuple[int, str]:
    """``(processes, where the number comes from)`` of a job launched with ``profile``: nodes x tasks_per_node."""
    return profile.num_tasks, (f"--executor {executor}, profile {profile.cluster}/{profile.resources}: "
                               f"{profile.nodes} node(s) x {profile.tasks_per_node} task(s)")


def planned_processes(job: str | None, recipe: str | os.PathLike | None, executor: str = "local",
                      cluster: str | None = None, resources: str | None = None,
                      overrides: Sequence[str] = ()) -> tuple[int, str]:
    """``(processes, where the number comes from)`` of a job before it is launched.

    ``--executor slurm|subprocess``: the profile's nodes x tasks_per_node (one rank per task). ``local``: this
    process, or, under a launcher that starts one process per rank (``torchrun``, ``accelerate launch`` with its
    ``num_processes``, DeepSpeed's launcher), its ``$WORLD_SIZE`` (:func:`igpo_kit.runner.launcher_processes`).
    """
    if executor in CLI_EXECUTORS:
        return profile_processes(launch_profile(job, recipe, executor, cluster, resources, overrides), executor)
    from igpo_kit.runner import launcher_processes

    return launcher_processes()


def _abs_plugins(plugins: Sequence[str]) -> list[str]:
    """Plugin files become absolute paths (the job may start elsewhere); module names stay."""
    return [str(Path(p).absolute()) if (p.endswith(".py") or os.sep in p) and Path(p).exists() else p
            for p in plugins]


def _job_name(run_dir: Path) -> str:
    return f"igpo-{run_dir.parent.name}"


def _check_not_running(run_dir: Path) -> list[str]:
    """Job ids of an earlier submission of this run dir (raises when one of them is still active)."""
    from igpo_kit.launch.manifest import MANIFEST_NAME, read_manifest
    from igpo_kit.launch.status import active

    if not (run_dir / MANIFEST_NAME).is_file():
        return []
    try:
        old = read_manifest(run_dir)
    except Exception:  # noqa: BLE001 - an unreadable manifest is replaced
        return []
    from igpo_kit.launch.manifest import job_records

    busy = active(job_records(old))
    if busy:
        raise ConfigError(
            f"{run_dir} is already submitted: job {busy[0].job_id} is {busy[0].state}",
            f"watch it with `igpo-kit status {run_dir}`, stop it with `igpo-kit cancel {run_dir}`, "
            "or start a separate run with --fresh")
    return [*old.extra.get("previous_jobs", []), *old.job_ids]


@contextlib.contextmanager
def _detached_output(path: Path, enabled: bool = True):
    """While submitting with the LocalExecutor, point fds 1/2 at ``path`` so the detached submitit controller
    (which inherits them) never writes into the terminal after ``igpo-kit run`` returned."""
    if not enabled:
        yield
        return
    import sys

    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    try:
        with open(path, "ab") as f:
            os.dup2(f.fileno(), 1)
            os.dup2(f.fileno(), 2)
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def submit_run(plan: Any, *, executor: str = "slurm", cluster: str | None = None, resources: str | None = None,
               overrides: Sequence[str] = (), dry_run: bool = False, wait: bool = False,
               argv: Sequence[str] | None = None, console: Any = None, poll_s: float = 5.0) -> dict[str, Any]:
    """Submit a prepared run (:class:`igpo_kit.runner.Plan`) as one submitit job and return at once.

    ``executor``: ``slurm`` or ``subprocess`` (submitit's LocalExecutor: a detached process on this machine).
    The job carries only text (:class:`~igpo_kit.launch.job.Job`); its submitit folder is
    ``<run_dir>/submitit/%j`` and ``<run_dir>/manifest.json`` records job id, paths and the sbatch script.
    ``resources`` defaults (Slurm) to the profile the recipe names (:func:`recipe_resources`), else to
    :func:`default_resources` of the job kind; ``cluster`` to the default cluster;
    ``overrides`` are ``-S key=value`` strings. ``dry_run``: print the sbatch script submitit would write
    (Slurm; the plan for subprocess) to stdout and touch nothing. ``wait``: show a live status table until the
    job ends; raise ``RunError`` unless it COMPLETED. A run directory that is already DONE is not submitted
    again; one whose job is still queued or running is refused.
    """
    import json
    import sys

    from rich.console import Console

    from igpo_kit.errors import RunError
    from igpo_kit.launch.job import Job
    from igpo_kit.launch.sbatch import render_profile

    if executor not in CLI_EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; expected one of {', '.join(CLI_EXECUTORS)} (or local)")
    console = console or Console(stderr=True)
    say = functools.partial(console.print, highlight=False, soft_wrap=True)
    kind = CLI_EXECUTORS[executor]
    job_kind = getattr(plan.config, "job", None)
    profile = launch_profile(job_kind, getattr(plan.config, "recipe", None), executor, cluster, resources, overrides)
    run_dir = Path(plan.run_dir).absolute()
    folder = run_dir / SUBMITIT_SUBDIR / "%j"
    name = _job_name(run_dir)
    argv = list(sys.argv if argv is None else argv)
    out: dict[str, Any] = {"executor": executor, "job": job_kind, "run_dir": str(run_dir),
                           "profile": profile.summary(), "num_tasks": profile.num_tasks, "notes": list(profile.notes)}

    def describe() -> None:
        say(f"[bold]{job_kind}[/bold] -> {run_dir}")
        say(f"  {executor}: {profile.summary()}")
        if profile.sources:
            say(f"  profile files: {', '.join(profile.sources)}", style="dim")
        for note in profile.notes:
            say(f"  [yellow]note[/yellow]: {note}")

    if dry_run:
        describe()
        if kind == "slurm":
            script = render_profile(profile, folder, name=name)
            say("  (dry run: the sbatch script submitit would write is on stdout; nothing was written)", style="dim")
            sys.stdout.write(script if script.endswith("\n") else script + "\n")
            sys.stdout.flush()
            return {**out, "dry_run": True, "sbatch_script": script}
        local = {k: v for k, v in profile.update_parameters(name=name).items() if not k.startswith("slurm_")}
        say(f"  (dry run: nothing was written) submitit LocalExecutor parameters: {local}", style="dim")
        return {**out, "dry_run": True, "parameters": local}

    if (run_dir / "DONE").exists() and (run_dir / "result.json").exists():
        say(f"[green]already done[/green]: {run_dir} (nothing submitted; --fresh starts a new run)")
        return {**out, "already_done": True, "result": json.loads((run_dir / "result.json").read_text())}
    if kind == "slurm" and (shutil.which("sbatch") is None or shutil.which("srun") is None):
        raise ConfigError("sbatch/srun not found: submit from a Slurm login node (with SLURM_CONF set where "
                          "needed)", "--dry-run shows the script; --executor subprocess runs on this machine")
    previous = _check_not_running(run_dir)
    job = Job(config_text=plan.config.text, bindings=list(plan.config.bindings), run_dir=str(run_dir),
              plugins=_abs_plugins(list(plan.plugins)), name=name, argv=argv)
    run_dir.mkdir(parents=True, exist_ok=True)
    ex = make_executor(kind, folder, profile, name=name)
    extra = {"job": job_kind, "recipe": str(getattr(plan.config, "recipe", "") or ""), "command": argv,
             "num_tasks": profile.num_tasks, **({"previous_jobs": previous} if previous else {})}
    with _detached_output(run_dir / SUBMITIT_SUBDIR / "controller.log", kind == "local"):
        _, manifest = submit_calls([job], executor=ex, run_dirs=[str(run_dir)], profile=profile,
                                   manifest_path=run_dir, kind="run", name=run_dir.parent.name, extra=extra)
    entry = manifest.jobs[0]
    describe()
    say(f"  submitted job [bold]{entry.job_id}[/bold]"
        + (f"; sbatch script {manifest.sbatch_script}" if manifest.sbatch_script else ""))
    say(f"  logs: {entry.stderr}")
    say(f"  watch: igpo-kit status {run_dir}  |  igpo-kit logs {run_dir} -f  |  igpo-kit cancel {run_dir}")
    out.update(job_ids=manifest.job_ids, manifest=str(manifest.path), sbatch_script=manifest.sbatch_script,
               stdout=entry.stdout, stderr=entry.stderr)
    if not wait:
        return out
    from igpo_kit.launch.status import wait as wait_for

    try:
        records = wait_for(manifest, console=console, poll_s=poll_s)
    except KeyboardInterrupt:
        say(f"stopped waiting; the job keeps running (igpo-kit status {run_dir})")
        raise
    out["states"] = {r.job_id: r.state for r in records}
    bad = [r for r in records if r.state != "COMPLETED"]
    if bad:
        raise RunError(f"job {bad[0].job_id} ended {bad[0].state}; see `igpo-kit logs {run_dir}`")
    if (run_dir / "result.json").exists():
        out["result"] = json.loads((run_dir / "result.json").read_text())
    say(f"[green]done[/green]: {run_dir}")
    return out


__all__ = ["CLI_EXECUTORS", "EXECUTORS", "RESOURCES_BY_JOB", "default_resources", "make_executor", "recipe_resources",
           "submit_calls", "submit_run"]
