"""``manifest.json``: what was submitted where, so ``status``/``logs``/``cancel`` work after the launcher exits.

One manifest per run directory or sweep directory::

    {"schema": 1, "kind": "run" | "sweep", "name": ..., "executor": "slurm" | "local" | "debug",
     "cluster": "h100", "resources": "rl", "profile": {...}, "folder": "<submitit folder, may hold %j>",
     "sbatch_script": "<path of the submitted script>", "submitted_at": "2026-11-22T05:40:53Z", "host": ...,
     "jobs": [{"job_id": "12_0", "array_index": 0, "run_dir": ..., "stdout": ..., "stderr": ...,
               "result": ..., "submission_file": ..., "cell": <sweep cell id or null>}, ...],
     "cancelled": {"12_0": "<time>"}, "extra": {...}}

Writes are atomic (temporary file + ``os.replace``). :func:`job_states` asks ``sacct`` first, falls back to
``squeue`` (finished jobs stay visible there for ``MinJobAge``) and then to files: submitit's result pickle,
the ``DONE``/``FAILED`` markers in the run directory, cancellations recorded here, and the Slurm
``*** JOB ... CANCELLED ***`` line in the job's log. Missing accounting (no slurmdbd) is therefore fine.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

from igpo_kit.atomic import write_atomic

MANIFEST_NAME = "manifest.json"
SCHEMA = 1
TERMINAL_STATES = frozenset({
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE",
    "REVOKED", "SPECIAL_EXIT",
})
ACTIVE_STATES = frozenset({
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
    "RESIZING", "STAGE_OUT", "SIGNALING", "STOPPED", "PREEMPTED", "RESV_DEL_HOLD",
})
_CMD_TIMEOUT_S = 30


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class JobEntry:
    """One submitted job (or array element)."""

    job_id: str
    array_index: int | None = None
    run_dir: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    result: str | None = None  # submitit's result pickle of task 0
    submission_file: str | None = None
    cell: str | None = None  # sweep cell id (sweeps only)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "JobEntry":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Manifest:
    """The contents of ``manifest.json``; ``path`` (not serialised) is where it was read from / written to."""

    executor: str
    jobs: list[JobEntry] = field(default_factory=list)
    folder: str | None = None
    kind: str = "run"
    name: str = ""
    cluster: str | None = None
    resources: str | None = None
    profile: dict[str, Any] = field(default_factory=dict)
    sbatch_script: str | None = None
    submitted_at: str = field(default_factory=_now)
    host: str = field(default_factory=socket.gethostname)
    cancelled: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA
    path: Path | None = field(default=None, repr=False, compare=False)

    # -- views -------------------------------------------------------------------------------------------------
    @property
    def job_ids(self) -> list[str]:
        return [j.job_id for j in self.jobs]

    def run_dirs(self) -> dict[int, str]:
        """``array index (or position) -> run dir``."""
        return {(j.array_index if j.array_index is not None else i): j.run_dir
                for i, j in enumerate(self.jobs) if j.run_dir}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("path", None)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: Path | None = None) -> "Manifest":
        known = {f.name for f in fields(cls)} - {"path", "jobs"}
        extra = dict(d.get("extra") or {})
        extra.update({k: v for k, v in d.items() if k not in known and k != "jobs"})  # keep unknown keys
        kwargs = {k: v for k, v in d.items() if k in known and k != "extra"}
        return cls(jobs=[JobEntry.from_dict(j) for j in d.get("jobs", [])], extra=extra, path=path, **kwargs)

    # -- io ----------------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write atomically to ``path`` (a file, or a directory -> ``<dir>/manifest.json``) or ``self.path``."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("Manifest.save() needs a path (the manifest was not read from a file)")
        if target.is_dir() or (path is not None and not target.suffix):
            target = target / MANIFEST_NAME
        write_json_atomic(target, self.to_dict())
        self.path = target
        return target


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as JSON to ``path`` (parents created) through :func:`igpo_kit.atomic.write_atomic`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_manifest(manifest: Manifest, path: str | os.PathLike) -> Path:
    return manifest.save(path)


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read ``manifest.json`` (``path`` may be the file or its directory)."""
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    if not p.is_file():
        from igpo_kit.errors import ConfigError

        raise ConfigError(f"no {MANIFEST_NAME} at {p} (is this a run or sweep directory submitted by igpo-kit?)")
    return Manifest.from_dict(json.loads(p.read_text()), path=p)


def from_jobs(jobs: Sequence[Any], *, executor: str, folder: str | os.PathLike | None = None,
              run_dirs: Sequence[str | os.PathLike | None] | None = None, array: bool | None = None,
              **fields_: Any) -> Manifest:
    """Build a manifest from submitit jobs (``executor.submit``/``batch``). ``run_dirs[i]`` belongs to
    ``jobs[i]``; array indices come from Slurm ids ``<id>_<index>`` or, for a batch, the position."""
    entries = []
    array = len(jobs) > 1 if array is None else array
    for i, job in enumerate(jobs):
        job_id = str(job.job_id)
        index: int | None = None
        if "_" in job_id and job_id.rsplit("_", 1)[1].isdigit():
            index = int(job_id.rsplit("_", 1)[1])
        elif array:
            index = i
        paths = getattr(job, "paths", None)
        entry = JobEntry(job_id=job_id, array_index=index,
                         run_dir=os.fspath(run_dirs[i]) if run_dirs and run_dirs[i] is not None else None)
        if paths is not None:
            entry.stdout, entry.stderr = str(paths.stdout), str(paths.stderr)
            entry.result = str(paths.result_pickle)
            entry.submission_file = str(paths.submission_file)
            if index is not None and "_" in job_id:  # one script per array, in the folder of the array's id
                from submitit.core.utils import JobPaths

                entry.submission_file = str(JobPaths(paths._folder, job_id=_base_id(job_id)).submission_file)
        entries.append(entry)
    sbatch = fields_.pop("sbatch_script", None)
    if sbatch is None and executor == "slurm" and entries and entries[0].submission_file:
        sbatch = entries[0].submission_file
    if folder is None and jobs and getattr(jobs[0], "paths", None) is not None:
        folder = str(jobs[0].paths._folder)  # the unformatted folder (may contain %j)
    return Manifest(executor=executor, jobs=entries, folder=None if folder is None else os.fspath(folder),
                    sbatch_script=sbatch, **fields_)


# ---------------------------------------------------------------------------------------------------------------
# states


@dataclass
class JobStatus:
    job_id: str
    state: str
    source: str  # sacct | squeue | result | marker | manifest | log | none
    array_index: int | None = None
    run_dir: str | None = None
    cell: str | None = None


def _run(cmd: list[str]) -> subprocess.CompletedProcess | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=_CMD_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None


def _base_id(job_id: str) -> str:
    return job_id.split("_", 1)[0]


def _expand(job_id: str) -> list[str]:
    """``12_[0-2,5%2]`` -> ``['12_0', '12_1', '12_2', '12_5']``; other ids unchanged."""
    m = re.fullmatch(r"(\d+)_\[([^\]]+)\]", job_id)
    if not m:
        return [job_id]
    base, spec = m.group(1), m.group(2).split("%", 1)[0]
    out = []
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(f"{base}_{k}" for k in range(int(a), int(b) + 1))
        elif part.strip():
            out.append(f"{base}_{part.strip()}")
    return out


def _normalize(state: str) -> str:
    state = state.strip().split()[0] if state.strip() else "UNKNOWN"
    return state.rstrip("+").upper()


def parse_state_table(text: str) -> dict[str, str]:
    """``JobID|State`` lines (``sacct -P`` / ``squeue -o %i|%T``) -> ``{job_id: STATE}``; array ranges expanded,
    job steps (``12.batch``) ignored."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if "|" not in line:
            continue
        jid, state = line.split("|", 1)[:2]
        jid = jid.strip()
        if not jid or "." in jid:
            continue
        for j in _expand(jid):
            out[j] = _normalize(state.split("|")[0])
    return out


def sacct_states(job_ids: Iterable[str]) -> dict[str, str] | None:
    """States from accounting, or ``None`` when ``sacct`` is missing or accounting is disabled."""
    bases = sorted({_base_id(j) for j in job_ids})
    if not bases:
        return {}
    proc = _run(["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(bases)])
    if proc is None or proc.returncode != 0:
        return None
    return parse_state_table(proc.stdout)


def squeue_states(job_ids: Iterable[str]) -> dict[str, str] | None:
    """States of jobs the controller still knows (running, pending, and finished ones younger than
    ``MinJobAge``), or ``None`` when ``squeue`` is missing or fails."""
    bases = {_base_id(j) for j in job_ids}
    if not bases:
        return {}
    proc = _run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T"])
    if proc is None or proc.returncode != 0:
        return None
    return {j: s for j, s in parse_state_table(proc.stdout).items() if _base_id(j) in bases}


def _result_state(entry: JobEntry) -> str | None:
    if not entry.result:
        return None
    p = Path(entry.result)
    if not p.is_file():
        return None
    try:
        with p.open("rb") as f:
            outcome = pickle.load(f)[0]
    except Exception:
        return None
    return {"success": "COMPLETED", "error": "FAILED"}.get(str(outcome))


def _marker_state(entry: JobEntry) -> str | None:
    if not entry.run_dir:
        return None
    d = Path(entry.run_dir)
    if (d / "DONE").exists():
        return "COMPLETED"
    if (d / "FAILED").exists():
        return "FAILED"
    return None


_LOG_EVENT = re.compile(r"\*\*\* (?:JOB|STEP) \S+ ON \S+ CANCELLED AT \S+(?: DUE TO (\w[\w ]*?))?(?: \*\*\*|$)")


def _log_state(entry: JobEntry) -> str | None:
    """The last Slurm ``*** JOB n ON host CANCELLED AT t [DUE TO ...] ***`` line of the job's stderr."""
    state = None
    for name in (entry.stderr, entry.stdout):
        if not name or not Path(name).is_file():
            continue
        try:
            with open(name, "rb") as f:
                f.seek(max(0, os.path.getsize(name) - 65536))
                tail = f.read().decode(errors="replace")
        except OSError:
            continue
        for m in _LOG_EVENT.finditer(tail):
            reason = (m.group(1) or "").strip().upper()
            state = {"TIME LIMIT": "TIMEOUT", "PREEMPTION": "PREEMPTED", "JOB REQUEUE": "REQUEUED",
                     "NODE FAILURE": "NODE_FAIL"}.get(reason, "CANCELLED")
        if state:
            return state
    return None


def job_records(manifest: Manifest, *, use_sacct: bool = True, use_squeue: bool = True) -> list[JobStatus]:
    """Per-job state with the source it came from (see module docstring for the order)."""
    ids = manifest.job_ids
    slurm = manifest.executor == "slurm"
    acct = sacct_states(ids) if (slurm and use_sacct) else None
    queue = squeue_states(ids) if (slurm and use_squeue) else None
    out = []
    for entry in manifest.jobs:
        jid = entry.job_id
        state = source = None
        if acct and jid in acct:
            state, source = acct[jid], "sacct"
        elif acct and _base_id(jid) in acct and "_" not in jid:
            state, source = acct[_base_id(jid)], "sacct"
        elif queue and jid in queue:
            state, source = queue[jid], "squeue"
        if state is None:
            state = _result_state(entry)
            source = "result" if state else None
        if state is None:
            state = _marker_state(entry)
            source = "marker" if state else None
        if (state is None or (state == "FAILED" and source in ("result", "marker"))) and (
                jid in manifest.cancelled or _base_id(jid) in manifest.cancelled):
            state, source = "CANCELLED", "manifest"  # a cancelled job's run dir says FAILED (interrupted)
        if state is None:
            state = _log_state(entry)
            source = "log" if state else None
        if state is None and manifest.executor == "local" and _local_alive(jid):
            state, source = "RUNNING", "process"
        out.append(JobStatus(job_id=jid, state=state or "UNKNOWN", source=source or "none",
                             array_index=entry.array_index, run_dir=entry.run_dir, cell=entry.cell))
    return out


def job_states(manifest: Manifest, *, use_sacct: bool = True, use_squeue: bool = True) -> dict[str, str]:
    """``{job_id: STATE}`` (Slurm state names: PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, ...;
    UNKNOWN when nothing tells). Works without accounting."""
    return {r.job_id: r.state for r in job_records(manifest, use_sacct=use_sacct, use_squeue=use_squeue)}


def summarize(states: dict[str, str]) -> dict[str, int]:
    """``{STATE: count}``."""
    counts: dict[str, int] = {}
    for s in states.values():
        counts[s] = counts.get(s, 0) + 1
    return dict(sorted(counts.items()))


# ---------------------------------------------------------------------------------------------------------------
# cancel


def _local_alive(job_id: str) -> bool:
    if not job_id.isdigit():
        return False
    try:
        cmdline = Path(f"/proc/{job_id}/cmdline").read_bytes()
    except OSError:
        return False
    return b"submitit" in cmdline


def cancel(manifest: Manifest, job_ids: Sequence[str] | None = None, *, save: bool = True) -> list[str]:
    """Cancel the manifest's jobs (``scancel`` on Slurm; SIGINT to the submitit process for ``local``), record
    the cancellation in the manifest (saved when it has a path) and return the ids cancelled."""
    from igpo_kit.errors import RunError

    if job_ids is None:
        targets = sorted({_base_id(j) for j in manifest.job_ids}) if manifest.executor == "slurm" else manifest.job_ids
    else:
        targets = list(job_ids)
    done: list[str] = []
    if manifest.executor == "slurm" and targets:
        proc = _run(["scancel", *targets])
        if proc is None:
            raise RunError("scancel not found: is this a Slurm login node (and SLURM_CONF set where needed)?")
        if proc.returncode != 0:
            raise RunError(f"scancel {' '.join(targets)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
        done = list(targets)
    elif manifest.executor == "local":
        for jid in targets:
            if _local_alive(jid):
                try:
                    os.kill(int(jid), signal.SIGINT)
                    done.append(jid)
                except OSError:
                    pass
    stamp = _now()
    for jid in done:
        manifest.cancelled[jid] = stamp
    if save and done and manifest.path is not None:
        manifest.save()
    return done


__all__ = [
    "ACTIVE_STATES", "MANIFEST_NAME", "TERMINAL_STATES", "JobEntry", "JobStatus", "Manifest", "cancel", "from_jobs",
    "job_records", "job_states", "parse_state_table", "read_manifest", "sacct_states", "squeue_states",
    "summarize", "write_json_atomic", "write_manifest",
]
