"""How many CPU cores this process may use, and how many of them no other process keeps busy right now.

Used to size local parallelism on CPU without a setting: every usable core on an idle machine, fewer where other
processes already run (a second intra-op thread that has to wait for a busy core slows a step down instead of
speeding it up).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["idle_cores", "runnable_tasks", "usable_cores"]


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a Slurm or container cpuset), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no sched_getaffinity (macOS)
        return max(1, os.cpu_count() or 1)


def runnable_tasks() -> int | None:
    """Tasks running or ready to run on the machine at this instant (Linux ``/proc/loadavg``), or None."""
    try:
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None


def idle_cores(samples: int = 5, interval_s: float = 0.05) -> int:
    """The usable cores that no other task is running on, at least 1.

    With a CPU set of its own (fewer usable cores than the machine has: a Slurm allocation, a container) the process
    gets all of them. Otherwise the fewest runnable tasks seen in ``samples`` looks ``interval_s`` apart, this
    process excluded, are taken as busy cores. The load *average* is not used: it stays high for minutes after the
    machine went idle (e.g. right after an install).
    """
    cores = usable_cores()
    if cores < (os.cpu_count() or cores):
        return cores
    seen = []
    for i in range(samples):
        if i:
            time.sleep(interval_s)
        n = runnable_tasks()
        if n is None:
            return cores
        seen.append(n)
    busy = max(0, min(seen) - 1)  # minus this process
    return max(1, min(cores, cores - busy))
