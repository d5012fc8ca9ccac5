"""End to end on a real (single-node, localhost) Slurm through submitit: see the ``slurm_cluster`` fixture.

Each test uses a fresh submitit folder (job ids restart after ``slurmctld -c``; a reused folder would return
stale results).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import pytest

from igpo_kit.launch import _selftest as st
from igpo_kit.launch.manifest import ACTIVE_STATES, cancel, job_records, job_states, read_manifest, sacct_states
from igpo_kit.launch.profiles import load_profile
from igpo_kit.launch.sbatch import render_sbatch
from igpo_kit.launch.submit import make_executor, submit_calls

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(autouse=True)
def _no_user_profiles(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("IGPO_KIT_CLUSTER_FILE", raising=False)


def wait_for(jobs, timeout_s=60.0):
    deadline = time.time() + timeout_s
    for job in jobs:
        while not job.done():
            if time.time() > deadline:
                for j in jobs:
                    j.cancel(check=False)
                pytest.fail(f"job {job.job_id} not done after {timeout_s}s")
            time.sleep(0.2)
    return [job.result() for job in jobs]


def settled_states(manifest, timeout_s=20.0):
    """job_states once every job left the active states (a result pickle can appear while Slurm still says
    RUNNING/COMPLETING for a moment)."""
    deadline = time.time() + timeout_s
    while True:
        states = job_states(manifest)
        if not set(states.values()) & ACTIVE_STATES or time.time() > deadline:
            return states
        time.sleep(0.2)


def test_single_job_round_trip(slurm_cluster, tmp_path):
    profile = load_profile("local", "tiny")
    ex = make_executor("slurm", tmp_path / "sub" / "%j", profile, name="selftest")
    params = profile.update_parameters(name="selftest")
    jobs, manifest = submit_calls([functools.partial(st.hostinfo, 21)], executor=ex, profile=profile,
                                  manifest_path=tmp_path, run_dirs=[str(tmp_path / "run")])
    (out,) = wait_for(jobs)
    assert out["x2"] == 42 and out["executor"] == "slurm"
    assert out["job_id"] == jobs[0].job_id and out["cpus"] == "1"
    # the dry-run preview is exactly the script submitit submitted
    submitted = Path(manifest.sbatch_script).read_text()
    assert submitted == render_sbatch(params, tmp_path / "sub" / "%j")
    back = read_manifest(tmp_path)
    assert back.jobs[0].job_id == jobs[0].job_id and back.cluster == "local" and back.executor == "slurm"
    assert settled_states(back) == {jobs[0].job_id: "COMPLETED"}


def test_array_of_three_with_batch(slurm_cluster, tmp_path):
    profile = load_profile("local", "tiny", ["array_parallelism=2"])
    ex = make_executor("slurm", tmp_path / "sub" / "%j", profile, name="array")
    run_dirs = [str(tmp_path / f"cell{i}") for i in range(3)]
    jobs, manifest = submit_calls([functools.partial(st.hostinfo, i) for i in range(3)], executor=ex,
                                  profile=profile, run_dirs=run_dirs, manifest_path=tmp_path, kind="sweep")
    outs = wait_for(jobs)
    assert [o["x2"] for o in outs] == [0, 2, 4]
    assert [o["array_task_id"] for o in outs] == ["0", "1", "2"]
    assert len({o["array_job_id"] for o in outs}) == 1  # one sbatch --array
    assert manifest.run_dirs() == dict(enumerate(run_dirs))
    script = Path(manifest.sbatch_script).read_text()
    assert "#SBATCH --array=0-2%2" in script
    assert script == render_sbatch(profile.update_parameters(name="array"), tmp_path / "sub" / "%j", array_size=3)
    assert set(settled_states(read_manifest(tmp_path)).values()) == {"COMPLETED"}


def test_failure_comes_back(slurm_cluster, tmp_path):
    ex = make_executor("slurm", tmp_path / "%j", load_profile("local", "tiny"))
    jobs, manifest = submit_calls([functools.partial(st.fail, "boom-42")], executor=ex)
    while not jobs[0].done():
        time.sleep(0.2)
    with pytest.raises(Exception, match="boom-42"):
        jobs[0].result()
    recs = job_records(manifest, use_squeue=False)
    assert (recs[0].state, recs[0].source) in {("FAILED", "result"), ("FAILED", "sacct")}


def test_two_task_gloo_all_reduce(slurm_cluster, tmp_path):
    if slurm_cluster.cpus < 2:
        pytest.skip(f"the Slurm node has {slurm_cluster.cpus} CPU; a 2-task job needs 2")
    profile = load_profile("local", "tiny", ["tasks_per_node=2"])
    ex = make_executor("slurm", tmp_path / "%j", profile, name="gloo")
    job = ex.submit(st.gloo_allreduce)
    deadline = time.time() + 90
    while not job.done():
        assert time.time() < deadline, "2-task job did not finish"
        time.sleep(0.2)
    results = job.results()
    assert sorted(r["rank"] for r in results) == [0, 1]
    assert {r["world_size"] for r in results} == {2} and {r["total"] for r in results} == {3.0}
    assert {r["local_rank"] for r in results} == {"0", "1"}


def test_cancel_reports_cancelled(slurm_cluster, tmp_path):
    ex = make_executor("slurm", tmp_path / "%j", load_profile("local", "tiny"), name="victim")
    jobs, manifest = submit_calls([functools.partial(st.sleep, 120)], executor=ex, manifest_path=tmp_path)
    jid = jobs[0].job_id
    deadline = time.time() + 30
    while job_states(manifest).get(jid) not in {"RUNNING"}:
        assert time.time() < deadline, f"job never started: {job_records(manifest)}"
        time.sleep(0.2)
    assert cancel(manifest) == [jid]
    deadline = time.time() + 30
    while job_states(manifest)[jid] != "CANCELLED":
        assert time.time() < deadline, f"not CANCELLED: {job_records(manifest)}"
        time.sleep(0.2)
    back = read_manifest(tmp_path)
    assert jid in back.cancelled
    # without sacct and squeue the recorded cancellation still answers
    rec = job_records(back, use_sacct=False, use_squeue=False)[0]
    assert rec.state == "CANCELLED" and rec.source in {"manifest", "log"}


def test_job_states_without_accounting(slurm_cluster, tmp_path):
    ex = make_executor("slurm", tmp_path / "%j", load_profile("local", "tiny"))
    jobs, manifest = submit_calls([functools.partial(st.hostinfo, 1)], executor=ex)
    wait_for(jobs)
    if sacct_states(manifest.job_ids) is not None:
        pytest.skip("this Slurm has accounting; the no-sacct path is covered by test_manifest.py")
    deadline = time.time() + 20  # the result pickle can appear while Slurm still says RUNNING/COMPLETING
    while (rec := job_records(manifest)[0]).state != "COMPLETED":
        assert time.time() < deadline and rec.state in ACTIVE_STATES, rec
        time.sleep(0.2)
    assert rec.source == "squeue"  # no sacct; finished jobs stay visible to squeue for MinJobAge
    recs = job_records(manifest, use_squeue=False)
    assert (recs[0].state, recs[0].source) == ("COMPLETED", "result")


def test_checkpointable_requeue(slurm_cluster, tmp_path):
    """Preempt a Checkpointable job (USR2, as Slurm does before a timeout/preemption): submitit calls
    checkpoint(), `scontrol requeue`s the job, and the fresh instance finishes from the state on disk."""
    ex = make_executor("slurm", tmp_path / "%j", load_profile("local", "tiny"), name="requeue")
    state = tmp_path / "state"
    job = ex.submit(st.CountingJob(str(state), target=2, wait_s=60))
    starts = state / "starts"
    deadline = time.time() + 30
    while not starts.exists():
        assert time.time() < deadline, "job never started"
        time.sleep(0.1)
    time.sleep(0.5)  # let submitit install its signal handlers
    job._interrupt()  # SIGTERM + USR2 through scancel --signal
    (result,) = wait_for([job], timeout_s=60)
    assert result == 2
    assert starts.read_text().split() == ["0", "1"]  # SLURM_RESTART_COUNT of each start
