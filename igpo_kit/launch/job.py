"""The callable submitit runs on the cluster: text in, JSON-able summary out.

A :class:`Job` carries only strings (the full gin config text, bindings, run dir, plugin names), so its pickle
is tiny and does not depend on gin state or on code changing between submit and run (the config is frozen at
submit time). Heavy imports happen inside ``__call__``. On timeout or preemption submitit calls
:meth:`Job.checkpoint`, which resubmits a *fresh* ``Job`` with the same fields: all state lives on disk in
``run_dir`` and ``igpo_kit.runner.execute`` resumes from the latest checkpoint there on every start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

import submitit
from submitit.helpers import Checkpointable, DelayedSubmission


_DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def setup_distributed() -> dict[str, str] | None:
    """When this process is one of several Slurm/submitit tasks, export the torch.distributed env
    (MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE) and return it; else ``None``.

    ``CUDA_VISIBLE_DEVICES`` is left alone (``set_cuda_visible_devices=False``): accelerate/DeepSpeed pick the
    device from ``LOCAL_RANK``. Existing values are overwritten: the Slurm allocation is authoritative (a job
    submitted from inside another job would otherwise inherit the parent's ranks); in a single-task job they are
    removed.
    """
    if "SUBMITIT_EXECUTOR" not in os.environ:
        return None
    try:
        env = submitit.JobEnvironment()
        num_tasks = env.num_tasks
    except Exception:  # not inside a submitit job (e.g. called directly)
        return None
    if num_tasks <= 1:
        for var in _DIST_VARS:  # inherited from the submitting process (e.g. a torchrun): not this job's
            os.environ.pop(var, None)
        return None
    dist = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    return {
        "MASTER_ADDR": dist.master_addr, "MASTER_PORT": str(dist.master_port), "RANK": str(dist.rank),
        "WORLD_SIZE": str(dist.world_size), "LOCAL_RANK": str(dist.local_rank),
        "LOCAL_WORLD_SIZE": str(dist.local_world_size),
    }


@dataclass
class Job(Checkpointable):
    """One igpo-kit job (rl, sft, eval, ...) as submitit runs it.

    Attributes:
        config_text: the full gin config (as ``igpo-kit show`` prints it), frozen at submit time.
        bindings: the ``-b`` binding strings (already part of ``config_text``; kept for the run record).
        run_dir: the run directory (on a shared filesystem for Slurm); checkpoints and markers live there.
        plugins: plugin modules/files to load before parsing (``--plugin``).
        name: a display name (job name, manifest).
        argv: the command line that submitted the job (recorded in ``run.json``; empty: the job's own argv).
    """

    config_text: str
    bindings: list[str] = field(default_factory=list)
    run_dir: str = "runs/run"
    plugins: list[str] = field(default_factory=list)
    name: str = "igpo-kit"
    argv: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("bindings", "plugins", "argv"):
                if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                    raise TypeError(f"Job.{f.name} must be a list of strings, not {value!r}")
                setattr(self, f.name, list(value))
            elif not isinstance(value, (str, os.PathLike)):
                raise TypeError(f"Job.{f.name} must be a string, not {type(value).__name__}")
            else:
                setattr(self, f.name, os.fspath(value))

    def __call__(self) -> dict[str, Any]:
        """Run the job on this task (every task of a multi-task job calls it; only rank 0 writes the run
        record). Returns the job's result plus ``rank``/``world_size``/``backend`` of the process group the
        job ran in (``world_size`` 1 and ``backend`` None without one)."""
        stop_on_sigterm()
        setup_distributed()
        from igpo_kit import runner  # lazy: keeps the pickle small and submit-side imports cheap

        result = runner.execute(config_text=self.config_text, bindings=list(self.bindings), run_dir=self.run_dir,
                                plugins=list(self.plugins), argv=list(self.argv) or None)
        return {**result, **process_group_info()}

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """Called by submitit on timeout/preemption: resubmit a fresh Job; state is on disk in ``run_dir``."""
        return DelayedSubmission(self.fresh())

    def fresh(self) -> "Job":
        return type(self)(config_text=self.config_text, bindings=list(self.bindings), run_dir=self.run_dir,
                          plugins=list(self.plugins), name=self.name, argv=list(self.argv))


def _exit_on_sigterm(signum: int, frame: Any = None) -> None:
    import sys

    sys.stderr.write("igpo-kit: SIGTERM (scancel, requeue or the end of the time limit): stopping now; the run "
                     "resumes from its latest checkpoint when started again\n")
    sys.stderr.flush()
    os._exit(128 + signum)


def stop_on_sigterm() -> bool:
    """In a Slurm job, make SIGTERM end this task at once (exit status 143, nothing more written).

    submitit ignores SIGTERM (its USR2 handler does the checkpoint-and-requeue before the time limit), so on
    ``scancel``, ``scontrol requeue`` or preemption a task would keep training until Slurm's SIGKILL several
    seconds later, writing metrics and checkpoints after Slurm already considers it gone. A :class:`Job` keeps
    all its state on disk and its ``checkpoint()`` is instantaneous, so there is nothing to save on SIGTERM: the
    next start resumes from the latest complete checkpoint either way. When USR2 comes first (time limit,
    preemption with ``preempt_send_user_signal``), submitit's handler has already requeued the job and exited.
    Returns whether the handler was installed (only under ``SUBMITIT_EXECUTOR=slurm``, in the main thread).
    """
    import signal
    import threading

    if os.environ.get("SUBMITIT_EXECUTOR") != "slurm" or threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    return True


def process_group_info() -> dict[str, Any]:
    """``rank``, ``world_size`` and ``backend`` of the initialised torch.distributed group (the one the job
    formed, e.g. through accelerate), else this task's env rank with world size 1 and no backend."""
    import sys

    dist = sys.modules.get("torch.distributed")  # never import torch just to ask
    if dist is not None and dist.is_available() and dist.is_initialized():
        return {"rank": dist.get_rank(), "world_size": dist.get_world_size(), "backend": str(dist.get_backend())}
    rank = os.environ.get("RANK") or os.environ.get("SLURM_PROCID") or "0"
    return {"rank": int(rank) if rank.isdigit() else 0, "world_size": 1, "backend": None}


__all__ = ["Job", "process_group_info", "setup_distributed", "stop_on_sigterm"]
