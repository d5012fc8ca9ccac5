"""Render the sbatch script submitit would write, without submitting anything (``--dry-run``).

The text comes from submitit's own ``submitit.slurm.slurm._make_sbatch_string`` through a ``SlurmExecutor``
whose parameters are set exactly as ``AutoExecutor.update_parameters`` sets them, so the preview is byte for
byte what ``sbatch`` would get (the folder is made absolute but not created; no file is touched; ``srun`` need
not exist on this machine). submitit has no public preview, so this uses its private ``_convert_parameters``,
``_internal_update_parameters`` and ``_make_submission_file_text``; ``tests/launch/test_sbatch.py`` pins them
against the public path (``AutoExecutor.update_parameters`` + ``submit`` to a fake ``sbatch``) with the installed
submitit, so an upgrade that changes them fails there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from submitit.auto.auto import AutoExecutor
from submitit.slurm import slurm as _slurm

from igpo_kit.errors import ConfigError


class _OfflineSlurmExecutor(_slurm.SlurmExecutor):
    """A SlurmExecutor that never submits; it only exists to build the submission file text."""

    @classmethod
    def affinity(cls) -> int:  # the real one needs `srun` on PATH
        return 1


def slurm_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """``AutoExecutor.update_parameters`` kwargs -> the SlurmExecutor parameters submitit derives from them
    (``timeout_min`` -> ``time``, ``mem_gb`` -> ``mem``, ``slurm_partition`` -> ``partition``, ...)."""
    generics = AutoExecutor._typed_parameters()
    generic: dict[str, Any] = {}
    specific: dict[str, Any] = {}
    for key, value in parameters.items():
        if value is None:
            continue
        if key in generics:
            generic.setdefault(key, value)
            continue
        prefix, _, arg = key.partition("_")
        if prefix == "slurm" and arg in generics:
            generic[arg] = value  # cluster-specific generic override (slurm_timeout_min) wins, as in AutoExecutor
        elif prefix == "slurm":
            specific[arg] = value
        elif prefix in ("local", "debug"):
            continue
        else:
            raise ConfigError(f"unknown submitit parameter {key!r} (slurm-specific ones take the slurm_ prefix)")
    for name, typ in generics.items():
        if name in generic and not isinstance(generic[name], (int, float) if typ is float else typ):
            raise ConfigError(f"submitit parameter {name!r} must be {typ.__name__}, not {generic[name]!r}")
    ex = _OfflineSlurmExecutor(Path("/nonexistent-dry-run"))
    converted = ex._convert_parameters(generic)
    converted.update(specific)
    return converted


def render_sbatch(parameters: Mapping[str, Any], folder: str | os.PathLike, *, array_size: int | None = None,
                  python: str | None = None) -> str:
    """The sbatch script for ``parameters`` (``AutoExecutor.update_parameters`` kwargs) and submitit ``folder``
    (may contain ``%j``). ``array_size`` > 1 renders the job array one ``executor.batch()`` would submit."""
    ex = _OfflineSlurmExecutor(folder, python=python)
    try:
        ex._internal_update_parameters(**slurm_parameters(parameters))
    except ValueError as exc:
        raise ConfigError(f"invalid Slurm parameters: {exc}") from None
    if array_size is not None and array_size > 1:
        ex.parameters["map_count"] = int(array_size)
    return ex._make_submission_file_text(ex._submitit_command_str, uid="dry-run")


def render_profile(profile: Any, folder: str | os.PathLike, *, name: str | None = None,
                   array_size: int | None = None, python: str | None = None) -> str:
    """``render_sbatch`` for a :class:`~igpo_kit.launch.profiles.Profile`."""
    return render_sbatch(profile.update_parameters(name=name), folder, array_size=array_size, python=python)


def sbatch_lines(script: str) -> dict[str, str]:
    """``{"--flag": "value"}`` for the ``#SBATCH`` lines of a script (flags without value map to ``""``)."""
    out: dict[str, str] = {}
    for line in script.splitlines():
        if line.startswith("#SBATCH "):
            flag, _, value = line[len("#SBATCH "):].strip().partition("=")
            out[flag] = value
    return out


__all__ = ["render_profile", "render_sbatch", "sbatch_lines", "slurm_parameters"]
