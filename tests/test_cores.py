"""igpo_kit.cores: usable cores (affinity) and the ones no other task is running on right now."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from igpo_kit import cores


def test_usable_cores_is_the_affinity():
    assert cores.usable_cores() == len(os.sched_getaffinity(0)) >= 1


def test_runnable_tasks_counts_this_process():
    n = cores.runnable_tasks()
    if n is None:
        pytest.skip("no /proc/loadavg on this system")
    assert n >= 1  # this process is running while it reads


def test_idle_cores_subtracts_other_running_tasks(monkeypatch):
    monkeypatch.setattr(cores, "usable_cores", lambda: 4)
    monkeypatch.setattr(cores.os, "cpu_count", lambda: 4)
    seen = iter([3, 2, 4])  # the fewest runnable tasks seen counts: 2 = this process + one other
    monkeypatch.setattr(cores, "runnable_tasks", lambda: next(seen))
    assert cores.idle_cores(samples=3, interval_s=0) == 3
    monkeypatch.setattr(cores, "runnable_tasks", lambda: 9)  # a busy machine: still one thread
    assert cores.idle_cores(samples=2, interval_s=0) == 1
    monkeypatch.setattr(cores, "runnable_tasks", lambda: None)  # no way to tell: every usable core
    assert cores.idle_cores(samples=2, interval_s=0) == 4


def test_a_cpu_set_of_its_own_is_used_whole(monkeypatch):
    """Fewer usable cores than the machine has (a Slurm allocation): all of them, whatever else runs."""
    monkeypatch.setattr(cores, "usable_cores", lambda: 4)
    monkeypatch.setattr(cores.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(cores, "runnable_tasks", lambda: 60)
    assert cores.idle_cores() == 4


@pytest.mark.skipif(cores.runnable_tasks() is None or cores.usable_cores() < 2
                    or cores.usable_cores() < (os.cpu_count() or 0), reason="needs the whole machine's 2+ cores")
def test_a_busy_loop_takes_a_core_away():
    free = cores.idle_cores()
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        assert cores.idle_cores() <= max(1, free - 1)
    finally:
        spin.kill()
        spin.wait()
