"""Run directories: the advisory lock (a second process is refused naming the holder; a dead holder, even one
whose forked children live on, releases it; a requeued Slurm job waits for its earlier instance)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from igpo_kit.errors import ConfigError
from igpo_kit.runs import RunLock

REPO = Path(__file__).resolve().parents[1]

HOLD = """
import os, sys, time
from igpo_kit.runs import RunLock
lock = RunLock(sys.argv[1]).acquire()
if sys.argv[2] == "fork":
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a forked child (like a grading worker) outlives the parent
        os.write(ready_w, b"1")  # the after-fork hooks have run by the time fork() returns here
        time.sleep(120)
        os._exit(0)
    os.read(ready_r, 1)  # the child is past fork(): no race with the kill below, even on a loaded machine
    print(pid, flush=True)
print("held", flush=True)
time.sleep(float(sys.argv[3]))
"""


def hold(run_dir: Path, mode: str = "plain", seconds: float = 120, env: dict | None = None) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir), mode, str(seconds)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    child = int(proc.stdout.readline()) if mode == "fork" else None
    assert proc.stdout.readline().strip() == "held"
    proc.child = child
    return proc


def test_second_process_is_refused_naming_pid_and_host_and_a_dead_holder_releases(tmp_path):
    holder = hold(tmp_path / "run", mode="fork")
    try:
        with pytest.raises(ConfigError) as info:
            RunLock(tmp_path / "run").acquire()
        msg = str(info.value)
        assert f"is in use by pid {holder.pid} on host {socket.gethostname()}" in msg and "\n" not in msg
    finally:
        holder.kill()  # kill -9: no cleanup runs in the holder
        holder.wait()
    try:
        assert os.kill(holder.child, 0) is None  # its forked child is still alive ...
        with RunLock(tmp_path / "run"):  # ... and does not keep the lock
            pass
    finally:
        os.kill(holder.child, signal.SIGKILL)


def test_requeued_slurm_job_waits_for_its_earlier_instance(tmp_path, monkeypatch):
    holder = hold(tmp_path / "run", seconds=1, env={"SLURM_JOB_ID": "4242"})
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    with RunLock(tmp_path / "run") as lock:
        assert lock.holder()["pid"] == os.getpid()
    holder.wait()
    monkeypatch.setenv("SLURM_JOB_ID", "4243")  # another job is refused, not kept waiting
    other = hold(tmp_path / "run", env={"SLURM_JOB_ID": "4242"})
    try:
        with pytest.raises(ConfigError, match=r"\(Slurm job 4242\)"):
            RunLock(tmp_path / "run").acquire()
    finally:
        other.kill()
        other.wait()


def test_cli_run_on_a_locked_run_dir_exits_2_and_writes_nothing(tmp_path):
    from typer.testing import CliRunner

    from igpo_kit.cli.main import app
    from igpo_kit.runner import prepare

    run_dir = prepare("tiny/eval.gin", runs_dir=tmp_path).run_dir
    holder = hold(run_dir)
    try:
        r = CliRunner().invoke(app, ["run", "tiny/eval.gin", "--runs-dir", str(tmp_path)])
    finally:
        holder.kill()
        holder.wait()
    assert r.exit_code == 2, r.output
    assert f"is in use by pid {holder.pid}" in r.output.replace("\n", " ")
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # no config.gin, run.json, metrics
