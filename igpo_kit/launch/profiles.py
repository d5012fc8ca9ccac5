"""Slurm profiles: a cluster (site) profile + a resources (job kind) profile + ``-S key=value`` overrides.

Files (data, shipped in the wheel as ``igpo_kit/_slurm``)::

    slurm/clusters/<name>.toml     site: partition, account, qos, constraint, gpus_per_node, cpus, mem, setup, env
    slurm/resources/<kind>.toml    job kind (sft, rl, eval, sweep_cell, tiny): nodes, tasks_per_node, time, ...

User files win over shipped ones with the same name: ``~/.config/igpo-kit/clusters/*.toml`` (and
``.../resources/*.toml``; ``$XDG_CONFIG_HOME`` is honoured), then ``$IGPO_KIT_CLUSTER_FILE`` (one file or several
separated by ``os.pathsep``; the file's stem is the cluster name and the first one is the default cluster).
A file may start from another profile with ``inherit = "h100"`` and change only what differs.

Merging, later wins: cluster -> resources -> overrides. Two rules make one resources profile fit every site:
``tasks_per_node = "gpus"`` means one task per GPU (1 on a CPU-only cluster), and a ``gpus_per_node`` set by a
resources profile is capped at the cluster's ``gpus_per_node`` (an override is taken literally). A cluster's
``max_time`` caps ``time`` (jobs resume on requeue), its ``max_nodes`` rejects larger jobs with the fix.

Unknown keys are errors naming the key, the file and the close matches. Profiles never hold secrets: ``env``
keys that look like credentials are rejected (export them in the shell; sbatch passes the environment on).
"""

from __future__ import annotations

import difflib
import math
import os
import re
import shlex
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from igpo_kit.errors import ConfigError

CLUSTER_FILE_ENV = "IGPO_KIT_CLUSTER_FILE"
DEFAULT_CLUSTER = "h100"
DEFAULT_RESOURCES = "tiny"
PER_GPU = "gpus"  # tasks_per_node = "gpus": one task per GPU

# key -> (accepted python types, one-line description); the description appears in errors and `describe_keys()`
_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "description": ((str,), "free text"),
    "inherit": ((str,), "name of a profile of the same kind to start from"),
    "partition": ((str,), "sbatch --partition"),
    "account": ((str,), "sbatch --account"),
    "qos": ((str,), "sbatch --qos"),
    "constraint": ((str,), "sbatch --constraint (node features, e.g. 'h100')"),
    "gpus_per_node": ((int,), "GPUs per node (cluster: what a node has; resources: what the job asks, capped)"),
    "cpus_per_task": ((int,), "CPUs per task"),
    "cpus_per_gpu": ((int,), "CPUs per GPU (converted to cpus_per_task)"),
    "mem_gb": ((int, float), "memory per node in GB"),
    "gpu_memory_gb": ((int, float), "memory of one GPU in GB (run --dry-run compares the memory estimate with it)"),
    "exclusive": ((bool,), "sbatch --exclusive"),
    "setup": ((list,), "shell lines run in the sbatch script before srun (e.g. 'module load cuda/12.4')"),
    "env": ((dict,), "environment variables exported in the sbatch script (e.g. NCCL settings); no secrets"),
    "srun_args": ((list,), "extra srun arguments"),
    "additional_parameters": ((dict,), "extra #SBATCH flags, e.g. {mail-type = 'END'}"),
    "max_nodes": ((int,), "largest job the cluster accepts, in nodes"),
    "max_time": ((int,), "partition time limit in minutes (caps `time`)"),
    "nodes": ((int,), "number of nodes"),
    "tasks_per_node": ((int, str), "Slurm tasks per node, or \"gpus\" for one task per GPU"),
    "time": ((int,), "time limit in minutes"),
    "array_parallelism": ((int,), "how many array tasks may run at once"),
    "signal_delay_s": ((int,), "seconds between the USR2 warning signal and the kill (checkpoint window)"),
    "max_num_timeout": ((int,), "how many times a timed-out job is requeued"),
}
CLUSTER_KEYS = frozenset({
    "description", "inherit", "partition", "account", "qos", "constraint", "gpus_per_node", "cpus_per_task",
    "cpus_per_gpu", "mem_gb", "gpu_memory_gb", "exclusive", "setup", "env", "srun_args", "additional_parameters",
    "max_nodes", "max_time",
})
RESOURCE_KEYS = frozenset({
    "description", "inherit", "nodes", "tasks_per_node", "gpus_per_node", "cpus_per_task", "cpus_per_gpu",
    "mem_gb", "gpu_memory_gb", "time", "array_parallelism", "signal_delay_s", "max_num_timeout",
})
OVERRIDE_KEYS = (CLUSTER_KEYS | RESOURCE_KEYS) - {"description", "inherit"}
_SECRET = re.compile(r"(TOKEN|SECRET|PASSW|API_?KEY|_KEY$|^KEY$|CREDENTIAL|PRIVATE)", re.I)
_SECRET_ASSIGN = re.compile(r"(TOKEN|SECRET|PASSW|API_?KEY|CREDENTIAL)[A-Z_]*\s*=\s*\S", re.I)


@dataclass(frozen=True)
class Profile:
    """A merged, validated Slurm profile. ``update_parameters()`` gives submitit's keyword arguments."""

    cluster: str
    resources: str
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    nodes: int = 1
    tasks_per_node: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    gpu_memory_gb: float | None = None
    exclusive: bool | None = None
    time: int = 60
    array_parallelism: int = 256
    signal_delay_s: int = 120
    max_num_timeout: int = 3
    setup: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    srun_args: tuple[str, ...] = ()
    additional_parameters: Mapping[str, Any] = field(default_factory=dict)
    sources: tuple[str, ...] = ()  # files merged, in order
    overrides: tuple[str, ...] = ()  # the -S strings applied
    notes: tuple[str, ...] = ()  # adjustments made while merging (caps), worth showing in --dry-run

    @property
    def num_tasks(self) -> int:
        return self.nodes * self.tasks_per_node

    @property
    def num_gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    def setup_lines(self) -> list[str]:
        """``setup`` plus one ``export K=V`` line per ``env`` entry (what the sbatch script runs before srun)."""
        return [*self.setup, *(f"export {k}={shlex.quote(str(v))}" for k, v in self.env.items())]

    def update_parameters(self, name: str | None = None) -> dict[str, Any]:
        """Keyword arguments for ``submitit.AutoExecutor.update_parameters`` (slurm-specific ones prefixed)."""
        p: dict[str, Any] = {
            "timeout_min": int(self.time),
            "nodes": self.nodes,
            "tasks_per_node": self.tasks_per_node,
            "slurm_signal_delay_s": self.signal_delay_s,
            "slurm_array_parallelism": self.array_parallelism,
        }
        if name:
            p["name"] = name
        if self.gpus_per_node:
            p["gpus_per_node"] = self.gpus_per_node
        if self.cpus_per_task is not None:
            p["cpus_per_task"] = self.cpus_per_task
        if self.mem_gb is not None:
            p["mem_gb"] = self.mem_gb
        for key in ("partition", "account", "qos", "constraint", "exclusive"):
            value = getattr(self, key)
            if value is not None:
                p[f"slurm_{key}"] = value
        setup = self.setup_lines()
        if setup:
            p["slurm_setup"] = setup
        if self.srun_args:
            p["slurm_srun_args"] = list(self.srun_args)
        if self.additional_parameters:
            p["slurm_additional_parameters"] = dict(self.additional_parameters)
        return p

    def executor_kwargs(self) -> dict[str, Any]:
        """Constructor keyword arguments for ``submitit.AutoExecutor`` (requeue budget after timeouts)."""
        return {"slurm_max_num_timeout": self.max_num_timeout, "local_max_num_timeout": self.max_num_timeout}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view (for manifests and ``--dry-run``)."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        d["env"], d["additional_parameters"] = dict(self.env), dict(self.additional_parameters)
        return d

    def summary(self) -> str:
        gpus = f"{self.gpus_per_node} GPU/node" if self.gpus_per_node else "no GPU"
        return (f"{self.cluster}/{self.resources}: {self.nodes} node(s) x {self.tasks_per_node} task(s), {gpus}, "
                f"{self.time} min" + (f", partition {self.partition}" if self.partition else ""))


# ---------------------------------------------------------------------------------------------------------------
# locating files


def slurm_dir() -> Path:
    """The ``slurm/`` data folder (checkout) or ``igpo_kit/_slurm`` (wheel)."""
    try:
        from igpo_kit import assets

        return Path(assets.path("slurm"))
    except (ImportError, AttributeError):  # pragma: no cover - assets.py ships with the package
        import igpo_kit

        pkg = Path(igpo_kit.__file__).resolve()
        for cand in (pkg.parents[1] / "slurm", pkg.parent / "_slurm"):
            if cand.is_dir():
                return cand
        return pkg.parents[1] / "slurm"


def user_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "igpo-kit"


def _env_cluster_files() -> list[Path]:
    raw = os.environ.get(CLUSTER_FILE_ENV, "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


def profile_files(kind: str) -> dict[str, Path]:
    """``name -> file`` for ``kind`` in ("clusters", "resources"); later sources override earlier ones."""
    if kind not in ("clusters", "resources"):
        raise ValueError(f"kind must be 'clusters' or 'resources', not {kind!r}")
    found: dict[str, Path] = {}
    for folder in (slurm_dir() / kind, user_config_dir() / kind):
        if folder.is_dir():
            for p in sorted(folder.glob("*.toml")):
                found[p.stem] = p
    if kind == "clusters":
        for p in _env_cluster_files():
            if not p.is_file():
                raise ConfigError(f"${CLUSTER_FILE_ENV} names {p}, which does not exist")
            found[p.stem] = p
    return found


def list_clusters() -> list[str]:
    return sorted(profile_files("clusters"))


def list_resources() -> list[str]:
    return sorted(profile_files("resources"))


def default_cluster() -> str:
    """The first ``$IGPO_KIT_CLUSTER_FILE`` cluster when set, else ``h100``."""
    env = _env_cluster_files()
    return env[0].stem if env else DEFAULT_CLUSTER


def _resolve(kind: str, name: str | os.PathLike) -> Path:
    text = str(name)
    if text.endswith(".toml") or os.sep in text:
        p = Path(text).expanduser()
        if not p.is_file():
            raise ConfigError(f"{kind[:-1]} profile file {p} does not exist")
        return p
    files = profile_files(kind)
    if text in files:
        return files[text]
    close = difflib.get_close_matches(text, list(files), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    where = f"{slurm_dir() / kind}, {user_config_dir() / kind}"
    if kind == "clusters":
        where += f", ${CLUSTER_FILE_ENV}"
    raise ConfigError(f"unknown {kind[:-1]} profile {text!r}{hint}",
                      f"available: {', '.join(sorted(files)) or '(none)'} (searched {where})")


# ---------------------------------------------------------------------------------------------------------------
# reading and validating


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _unknown_key_message(key: str, allowed: Iterable[str], where: str, kind: str) -> str:
    allowed = sorted(allowed)
    close = difflib.get_close_matches(key, allowed, n=3, cutoff=0.6)
    msg = f"unknown key {key!r} in {where}"
    if close:
        msg += f"; did you mean {', '.join(repr(c) for c in close)}?"
    other = RESOURCE_KEYS if kind == "cluster" else CLUSTER_KEYS
    if key in other and key not in allowed:
        owner = "resources profile (slurm/resources/<kind>.toml)" if kind == "cluster" else "cluster profile"
        msg += f" ({key!r} belongs in a {owner}, or pass -S {key}=...)"
    return msg + f" Allowed keys: {', '.join(allowed)}."


def _check_value(key: str, value: Any, where: str) -> list[str]:
    """Type and range problems of one (known) key."""
    types, _ = _KEYS[key]
    if isinstance(value, bool) and bool not in types:
        return [f"{where}: {key} must be {' or '.join(t.__name__ for t in types)}, not a boolean ({value!r})"]
    if not isinstance(value, types):
        return [f"{where}: {key} must be {' or '.join(t.__name__ for t in types)}, not {type(value).__name__} "
                f"({value!r})"]
    errors: list[str] = []
    if key == "tasks_per_node" and isinstance(value, str) and value != PER_GPU:
        errors.append(f"{where}: tasks_per_node must be an integer or \"{PER_GPU}\" (one task per GPU), not {value!r}")
    minimum = {"nodes": 1, "time": 1, "array_parallelism": 1, "cpus_per_task": 1, "cpus_per_gpu": 1, "max_nodes": 1,
               "max_time": 1, "gpus_per_node": 0, "signal_delay_s": 0, "max_num_timeout": 0, "mem_gb": 0,
               "tasks_per_node": 1}
    if key in minimum and isinstance(value, (int, float)) and not isinstance(value, bool) and value < minimum[key]:
        errors.append(f"{where}: {key} must be >= {minimum[key]}, not {value!r}")
    if key in ("setup", "srun_args") and not all(isinstance(v, str) for v in value):
        errors.append(f"{where}: {key} must be a list of strings")
    if key == "env":
        for k, v in value.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
                errors.append(f"{where}: env key {k!r} is not a valid environment variable name")
            if isinstance(v, (dict, list)):
                errors.append(f"{where}: env.{k} must be a string or number")
            if _SECRET.search(k):
                errors.append(f"{where}: env.{k} looks like a secret; profiles must not hold credentials — export "
                              f"{k} in your shell instead (sbatch passes the submitting environment to the job)")
    if key == "setup":
        from igpo_kit.secrets import describe

        for i, line in enumerate(value, 1):
            if isinstance(line, str) and (_SECRET_ASSIGN.search(line) or describe(line)):
                what = describe(line) or "a secret"
                errors.append(f"{where}: setup line {i} looks like it sets a secret ({what}); export it in your "
                              "shell instead of writing it into a profile")
    if key == "env":
        from igpo_kit.secrets import describe

        for k, v in value.items():
            if isinstance(v, str) and not _SECRET.search(k) and describe(v):
                errors.append(f"{where}: env.{k} looks like a secret ({describe(v)}); export it in your shell "
                              "instead of writing it into a profile")
    if key == "additional_parameters":
        for k, v in value.items():
            if isinstance(v, (dict, list)):
                errors.append(f"{where}: additional_parameters.{k} must be a string, number or boolean")
    return errors


def _validate_layer(data: Mapping[str, Any], allowed: frozenset[str], where: str, kind: str) -> list[str]:
    errors = []
    for key, value in data.items():
        if key not in allowed:
            errors.append(_unknown_key_message(key, allowed, where, kind))
            continue
        errors.extend(_check_value(key, value, where))
    if "cpus_per_task" in data and "cpus_per_gpu" in data:
        errors.append(f"{where}: set cpus_per_task or cpus_per_gpu, not both")
    return errors


def _load_layer(kind: str, name: str | os.PathLike, seen: tuple[Path, ...] = ()) -> tuple[dict[str, Any], list[Path]]:
    """A profile file with its ``inherit`` chain resolved: (merged data, files from base to leaf)."""
    path = _resolve(kind, name)
    if path.resolve() in seen:
        chain = " -> ".join(str(p) for p in (*seen, path.resolve()))
        raise ConfigError(f"inherit cycle in {kind[:-1]} profiles: {chain}")
    data = _read_toml(path)
    single = "cluster" if kind == "clusters" else "resources"
    allowed = CLUSTER_KEYS if kind == "clusters" else RESOURCE_KEYS
    errors = _validate_layer(data, allowed, f"{path} ({single} profile)", single)
    if errors:
        raise ConfigError(*errors)
    parent = data.pop("inherit", None)
    if parent is None:
        return data, [path]
    base, files = _load_layer(kind, parent, (*seen, path.resolve()))
    return _overlay(base, data), [*files, path]


def _overlay(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if key in ("env", "additional_parameters") and isinstance(value, dict):
            out[key] = {**out.get(key, {}), **value}
        else:
            out[key] = value
        if key == "cpus_per_task":
            out.pop("cpus_per_gpu", None)
        elif key == "cpus_per_gpu":
            out.pop("cpus_per_task", None)
    return out


# ---------------------------------------------------------------------------------------------------------------
# overrides


def parse_value(text: str) -> Any:
    """A TOML literal (``8``, ``1.5``, ``true``, ``"x"``, ``["a", "b"]``, ``{k = "v"}``), else the raw string;
    an empty string means "unset" (``None``)."""
    text = text.strip()
    if text == "":
        return None
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_override(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, value)``; ``env.NAME=value`` / ``additional_parameters.flag=value`` address one
    entry. Unknown keys are errors with close matches."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"-S {text!r}: expected key=value (e.g. -S nodes=1, -S partition=gpu, "
                          "-S env.NCCL_DEBUG=INFO)")
    head = key.split(".", 1)[0]
    if head not in OVERRIDE_KEYS:
        raise ConfigError(_unknown_key_message(head, OVERRIDE_KEYS, f"-S {text}", "override"))
    if "." in key and head not in ("env", "additional_parameters"):
        raise ConfigError(f"-S {text!r}: only env.NAME and additional_parameters.FLAG take a dotted key")
    value = parse_value(raw)
    if "." in key:
        return key, value
    if value is not None:
        _, desc = _KEYS[head]
        types = _KEYS[head][0]
        if types == (str,) and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # -S account=1234
        if isinstance(value, str) and types == (list,):
            value = [value]  # -S setup="module load cuda"
        errors = _check_value(head, value, f"-S {text}")
        if errors:
            raise ConfigError(*errors, f"({head}: {desc})")
    return key, value


def _apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    out = dict(data)
    for text in overrides:
        key, value = parse_override(text)
        if "." in key:
            head, sub = key.split(".", 1)
            table = dict(out.get(head) or {})
            if value is None:
                table.pop(sub, None)
            else:
                errors = _check_value(head, {sub: value}, f"-S {text}")
                if errors:
                    raise ConfigError(*errors)
                table[sub] = value
            out[head] = table
        elif value is None:
            out.pop(key, None)
        else:
            out = _overlay(out, {key: value})
    return out


# ---------------------------------------------------------------------------------------------------------------
# merge


def load_profile(cluster: str | os.PathLike | None = None, resources: str | os.PathLike | None = None,
                 overrides: Sequence[str] = ()) -> Profile:
    """Merge ``slurm/clusters/<cluster>.toml`` + ``slurm/resources/<resources>.toml`` + ``-S`` overrides.

    ``cluster`` defaults to :func:`default_cluster`, ``resources`` to ``"tiny"``; either may be a path to a
    ``.toml`` file. Raises :class:`~igpo_kit.errors.ConfigError` listing every problem found.
    """
    cluster = cluster or default_cluster()
    resources = resources or DEFAULT_RESOURCES
    cdata, cfiles = _load_layer("clusters", cluster)
    rdata, rfiles = _load_layer("resources", resources)
    notes: list[str] = []

    cluster_gpus = int(cdata.get("gpus_per_node", 0))
    merged = _overlay(cdata, rdata)
    if "gpus_per_node" in rdata and rdata["gpus_per_node"] > cluster_gpus:
        notes.append(f"resources {Path(str(resources)).stem!r} asks {rdata['gpus_per_node']} GPU/node; cluster "
                     f"{Path(str(cluster)).stem!r} has {cluster_gpus}: using {cluster_gpus}")
        merged["gpus_per_node"] = cluster_gpus
    over = _apply_overrides({}, overrides)  # parse + validate first, then overlay (keeps caps out of overrides)
    merged = _apply_overrides(merged, overrides)

    max_time = merged.pop("max_time", None)
    max_nodes = merged.pop("max_nodes", None)
    gpus = int(merged.get("gpus_per_node", 0))
    tasks = merged.get("tasks_per_node", PER_GPU)
    if tasks == PER_GPU:
        tasks = max(1, gpus)
    if "cpus_per_gpu" in merged:
        per_gpu = merged.pop("cpus_per_gpu")
        merged["cpus_per_task"] = max(1, math.floor(per_gpu * max(gpus, 1) / tasks))
    time = int(merged.get("time", 60))
    if max_time is not None and time > max_time:
        if "time" in over:
            raise ConfigError(f"-S time={over['time']} exceeds the cluster's max_time={max_time} minutes")
        notes.append(f"time {time} min capped at the cluster's max_time={max_time} min (the job requeues and resumes)")
        time = max_time
    nodes = int(merged.get("nodes", 1))
    if max_nodes is not None and nodes > max_nodes:
        raise ConfigError(
            f"resources {Path(str(resources)).stem!r} asks for {nodes} nodes but cluster {Path(str(cluster)).stem!r} "
            f"has max_nodes={max_nodes}", f"shrink the job with -S nodes={max_nodes} (or use --resources tiny)")

    known = {f.name for f in fields(Profile)}
    kwargs = {k: v for k, v in merged.items() if k in known and k != "description"}
    kwargs.update(nodes=nodes, tasks_per_node=int(tasks), gpus_per_node=gpus, time=time)
    for key in ("setup", "srun_args"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    for key in ("mem_gb", "gpu_memory_gb"):
        if kwargs.get(key) is not None:
            kwargs[key] = float(kwargs[key])
    if "env" in kwargs:
        kwargs["env"] = {k: str(v) for k, v in kwargs["env"].items()}
    return Profile(cluster=Path(str(cluster)).stem, resources=Path(str(resources)).stem,
                   sources=tuple(str(p) for p in (*cfiles, *rfiles)), overrides=tuple(overrides),
                   notes=tuple(notes), **kwargs)


def describe_keys() -> dict[str, str]:
    """``key -> description`` of every profile key (for ``igpo-kit ls`` / docs)."""
    return {k: d for k, (_, d) in _KEYS.items()}


__all__ = [
    "CLUSTER_FILE_ENV", "CLUSTER_KEYS", "OVERRIDE_KEYS", "PER_GPU", "RESOURCE_KEYS", "Profile", "default_cluster",
    "describe_keys", "list_clusters", "list_resources", "load_profile", "parse_override", "parse_value",
    "profile_files", "slurm_dir", "user_config_dir",
]
