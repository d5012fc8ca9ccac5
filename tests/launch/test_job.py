"""The submitit Job: text-only, picklable, resubmits a fresh copy on checkpoint, calls runner.execute."""

from __future__ import annotations

import pickle
import sys
import types

import cloudpickle
import pytest
from submitit.helpers import Checkpointable, DelayedSubmission

from igpo_kit.launch.job import Job, setup_distributed

CONFIG = "import igpo_kit.entry\nentry.evaluate.seed = 3\n"


def make_job(tmp_path) -> Job:
    return Job(config_text=CONFIG, bindings=["SEED=3"], run_dir=str(tmp_path / "run"), plugins=["my_plugin"],
               name="tiny-eval")


def test_job_is_checkpointable_and_picklable(tmp_path):
    job = make_job(tmp_path)
    assert isinstance(job, Checkpointable)
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, pickle.loads)):
        blob = dumps(job)
        assert loads(blob) == job
        assert len(blob) < 2000
        assert b"igpo_kit.launch.job" in blob  # pickled by reference, not by value


def test_checkpoint_resubmits_a_fresh_job(tmp_path):
    job = make_job(tmp_path)
    delayed = job.checkpoint()
    assert isinstance(delayed, DelayedSubmission)
    assert delayed.function == job and delayed.function is not job
    assert delayed.args == () and delayed.kwargs == {}
    assert delayed.function.bindings is not job.bindings


def test_fields_are_text(tmp_path):
    assert Job(config_text=CONFIG, run_dir=tmp_path).run_dir == str(tmp_path)
    with pytest.raises(TypeError):
        Job(config_text=CONFIG, bindings="SEED=3")
    with pytest.raises(TypeError):
        Job(config_text=object())


def test_call_delegates_to_runner_execute(tmp_path, monkeypatch):
    """Stand-in runner (the real one needs a full config); checks the exact call the job makes."""
    calls = []
    fake = types.ModuleType("igpo_kit.runner")
    fake.execute = lambda **kw: calls.append(kw) or {"ok": True}
    monkeypatch.setitem(sys.modules, "igpo_kit.runner", fake)
    import igpo_kit

    monkeypatch.setattr(igpo_kit, "runner", fake, raising=False)
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("SLURM_PROCID", raising=False)
    job = make_job(tmp_path)
    assert job() == {"ok": True, "rank": 0, "world_size": 1, "backend": None}
    assert calls == [{"config_text": CONFIG, "bindings": ["SEED=3"], "run_dir": str(tmp_path / "run"),
                      "plugins": ["my_plugin"], "argv": None}]
    job.argv = ["igpo-kit", "run", "x.gin"]
    job.fresh()()
    assert calls[-1]["argv"] == ["igpo-kit", "run", "x.gin"]


def test_no_distributed_setup_outside_a_multi_task_job(monkeypatch):
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    assert setup_distributed() is None


def test_single_task_job_drops_inherited_ranks(monkeypatch):
    """A job submitted from a process that had torch.distributed variables (e.g. inside torchrun) must not
    believe it is one rank of a larger group: accelerate would wait for peers that never come."""
    for k, v in {"SUBMITIT_EXECUTOR": "local", "SUBMITIT_LOCAL_JOB_ID": "123", "SUBMITIT_LOCAL_NTASKS": "1",
                 "SUBMITIT_LOCAL_JOB_NUM_NODES": "1", "SUBMITIT_LOCAL_NODEID": "0", "SUBMITIT_LOCAL_GLOBALID": "0",
                 "SUBMITIT_LOCAL_LOCALID": "0", "RANK": "3", "WORLD_SIZE": "8", "MASTER_ADDR": "x"}.items():
        monkeypatch.setenv(k, v)
    import os

    assert setup_distributed() is None
    assert not {"RANK", "WORLD_SIZE", "MASTER_ADDR"} & set(os.environ)


SIGTERM_CHILD = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: print("bypassed", flush=True))  # what submitit installs
from igpo_kit.launch.job import stop_on_sigterm
print("installed" if stop_on_sigterm() else "not installed", flush=True)
time.sleep(30)
print("still running", flush=True)
"""


@pytest.mark.parametrize("executor", ["slurm", "local"])
def test_sigterm_ends_a_slurm_task_at_once(executor, tmp_path):
    """scancel / scontrol requeue: the task stops on SIGTERM instead of training on until Slurm's SIGKILL."""
    import os
    import signal
    import subprocess
    import time

    env = {**os.environ, "SUBMITIT_EXECUTOR": executor}
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        first = proc.stdout.readline().strip()
        assert first == ("installed" if executor == "slurm" else "not installed")
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        if executor == "slurm":
            assert proc.wait(timeout=10) == 128 + signal.SIGTERM and time.time() - t0 < 5
            assert "stopping now" in proc.stderr.read()
        else:
            assert proc.stdout.readline().strip() == "bypassed"  # submitit's handler stays
    finally:
        proc.kill()
        proc.wait()
