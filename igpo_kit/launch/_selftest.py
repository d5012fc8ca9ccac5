"""Small picklable functions for checking a submitit/Slurm setup end to end (tests, ``igpo-kit doctor``).

They live in an importable module (not in a test file) so the job process can unpickle them by reference.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from submitit.helpers import Checkpointable, DelayedSubmission


def hostinfo(x: int = 0) -> dict[str, Any]:
    """Where the job ran: host, Slurm ids, submitit executor; ``x2`` proves the argument arrived."""
    return {
        "x2": 2 * x,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "executor": os.environ.get("SUBMITIT_EXECUTOR"),
        "job_id": os.environ.get("SLURM_JOB_ID"),
        "array_job_id": os.environ.get("SLURM_ARRAY_JOB_ID"),
        "array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
        "procid": os.environ.get("SLURM_PROCID"),
        "cpus": os.environ.get("SLURM_CPUS_PER_TASK"),
    }


def fail(message: str = "selftest failure") -> None:
    raise RuntimeError(message)


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def gloo_allreduce() -> dict[str, Any]:
    """Set up torch.distributed from the Slurm/submitit environment and all-reduce ``rank + 1`` over gloo.

    With 2 tasks every rank returns ``total == 3.0``.
    """
    import torch
    import torch.distributed as dist

    from igpo_kit.launch.job import setup_distributed

    exported = setup_distributed() or {}
    dist.init_process_group("gloo", timeout=__import__("datetime").timedelta(seconds=60))
    try:
        t = torch.tensor([float(dist.get_rank() + 1)])
        dist.all_reduce(t)
        return {"rank": dist.get_rank(), "world_size": dist.get_world_size(), "total": float(t.item()),
                "host": socket.gethostname(), "master_port": exported.get("MASTER_PORT"),
                "local_rank": os.environ.get("LOCAL_RANK")}
    finally:
        dist.destroy_process_group()


class CountingJob(Checkpointable):
    """A checkpointable counter with its state on disk: each start appends a line to ``<dir>/starts``; it
    finishes once ``target`` starts happened, else it waits (to be interrupted / requeued). ``checkpoint``
    resubmits a fresh instance, as :class:`igpo_kit.launch.job.Job` does."""

    def __init__(self, directory: str, target: int = 2, wait_s: float = 120.0) -> None:
        self.directory, self.target, self.wait_s = str(directory), int(target), float(wait_s)

    def __call__(self) -> int:
        path = Path(self.directory) / "starts"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(f"{os.environ.get('SLURM_RESTART_COUNT', '0')}\n")
        starts = len(path.read_text().splitlines())
        if starts >= self.target:
            return starts
        time.sleep(self.wait_s)
        return starts

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        return DelayedSubmission(type(self)(self.directory, self.target, self.wait_s))
