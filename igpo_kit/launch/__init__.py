"""Launching jobs: Slurm profiles, sbatch preview, the submitit Job, submission and manifests.

submitit is imported only here (``igpo_kit/launch``); attributes are resolved lazily so importing
``igpo_kit.launch`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Profile": "profiles", "load_profile": "profiles", "parse_override": "profiles", "list_clusters": "profiles",
    "list_resources": "profiles", "default_cluster": "profiles", "slurm_dir": "profiles",
    "render_sbatch": "sbatch", "render_profile": "sbatch",
    "Job": "job", "setup_distributed": "job",
    "Manifest": "manifest", "JobEntry": "manifest", "read_manifest": "manifest", "write_manifest": "manifest",
    "from_jobs": "manifest", "job_states": "manifest", "job_records": "manifest", "cancel": "manifest",
    "MANIFEST_NAME": "manifest", "TERMINAL_STATES": "manifest",
    "make_executor": "submit", "submit_calls": "submit", "EXECUTORS": "submit", "submit_run": "submit",
    "default_resources": "submit",
    "status_table": "status", "wait": "status", "progress": "status",
    "submit_sweep": "sweep", "cell_resources": "sweep", "active_cells": "sweep",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'igpo_kit.launch' has no attribute {name!r}")
    return getattr(importlib.import_module(f"igpo_kit.launch.{module}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = sorted(_EXPORTS)
