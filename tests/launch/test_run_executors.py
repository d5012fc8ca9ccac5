"""``igpo-kit run --executor subprocess|slurm``, ``status``, ``logs``, ``cancel`` end to end through the CLI.

The tiny RL recipe (8 optimizer steps = 4 rollout batches, seed 0) runs three ways at once, started by the
module fixture ``tiny_runs``: in process (the reference), through submitit's LocalExecutor, and on the real
local Slurm (``slurm_cluster``), where it is requeued (``scontrol requeue``) right after its first metrics
line and must resume from its checkpoint. All three must leave the same run record: config.gin, bindings,
operative config, result and every metric value except timings (keys ending in ``_s``).

Every process gets ``OMP_NUM_THREADS=1`` (the local cluster profile exports it too): on a small, busy machine
more torch threads than CPUs make the tiny model many times slower.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from igpo_kit.cli.main import main; main()"]
TINY_RL = ["tiny/igpo.gin", "-b", "entry.rl.max_steps = 8"]  # 4 rollout batches, a checkpoint after each
SAME_FILES = ("config.gin", "bindings.txt", "operative_config.gin")


def cli_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("IGPO_KIT_CLUSTER_FILE", "IGPO_KIT_RUNS", "RANK")}
    env.update(OMP_NUM_THREADS="1", XDG_CONFIG_HOME=str(tmp / "xdg"), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", IGPO_KIT_DEBUG="0")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def igpo(args: list[str], env: dict[str, str], check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"igpo-kit {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def submit(args: list[str], env: dict[str, str]) -> dict:
    return json.loads(igpo(["run", *args, "--json"], env).stdout)


def status(run_dir: str | Path, env: dict[str, str]) -> dict[str, str]:
    data = json.loads(igpo(["status", str(run_dir), "--json"], env).stdout)
    return {j["job_id"]: j["state"] for j in data["jobs"]}


def wait_file(path: Path, timeout_s: float, what: str, alive=None) -> None:
    deadline = time.time() + timeout_s
    while not path.exists():
        if alive is not None and not alive():
            pytest.fail(f"{what}: the process ended without writing {path}")
        if time.time() > deadline:
            pytest.fail(f"{what}: no {path} after {timeout_s:.0f}s")
        time.sleep(0.5)


def metrics(run_dir: Path) -> list[dict]:
    """Per-step metric values without timings (keys ending in ``_s``)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]


def assert_same_record(run_dir: Path, reference: Path) -> None:
    for name in SAME_FILES:
        assert (run_dir / name).read_text() == (reference / name).read_text(), name
    got, want = json.loads((run_dir / "result.json").read_text()), json.loads((reference / "result.json").read_text())
    assert got.pop("run_dir") == str(run_dir) and want.pop("run_dir") == str(reference)
    assert got == want
    assert metrics(run_dir) == metrics(reference)
    assert len(metrics(reference)) == 4


def failing_slurm_clients(tmp: Path, env: dict[str, str]) -> dict[str, str]:
    """``env`` with ``sacct`` and ``squeue`` replaced by commands that fail (no accounting, controller away)."""
    bin_dir = tmp / "no-slurm-bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("sacct", "squeue"):
        p = bin_dir / name
        p.write_text("#!/bin/sh\necho 'slurm_load_jobs error: Unable to contact slurm controller' >&2\nexit 1\n")
        p.chmod(0o755)
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"}


@dataclass
class TinyRuns:
    root: Path
    env: dict[str, str]
    reference: subprocess.Popen
    reference_dir: Path
    subprocess_run: dict
    slurm_run: dict | None = None
    slurm_skip: str = ""
    lines_at_requeue: int | None = None
    procs: list = field(default_factory=list)

    def wait_reference(self, timeout_s: float = 300) -> Path:
        try:
            rc = self.reference.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the local reference run did not finish in {timeout_s}s")
        assert rc == 0, (self.root / "reference.err").read_text()[-2000:]
        return self.reference_dir


@pytest.fixture(scope="module")
def tiny_runs(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_runs")
    env = cli_env(root)
    with open(root / "reference.err", "w") as errf:
        reference = subprocess.Popen([*CLI, "run", *TINY_RL, "--runs-dir", str(root / "local")], env=env, cwd=REPO,
                                     stdout=subprocess.DEVNULL, stderr=errf)
    runs = TinyRuns(root=root, env=env, reference=reference, reference_dir=Path(), subprocess_run={})
    try:
        runs.subprocess_run = submit([*TINY_RL, "--executor", "subprocess", "--runs-dir", str(root / "sub")], env)
        runs.reference_dir = root / "local" / "igpo" / Path(runs.subprocess_run["run_dir"]).name
        try:
            cluster = request.getfixturevalue("slurm_cluster")
        except pytest.skip.Exception as exc:
            runs.slurm_skip = str(exc)
        else:
            senv = {**env, "SLURM_CONF": cluster.conf}
            runs.env = senv
            run = submit([*TINY_RL, "--executor", "slurm", "--cluster", "local", "--resources", "tiny",
                          "--runs-dir", str(root / "slurm")], senv)
            run_dir = Path(run["run_dir"])
            deadline = time.time() + 240
            # requeue between checkpoints: right after the first rollout batch logged and checkpointed
            while not ((run_dir / "metrics.jsonl").exists() and (run_dir / "metrics.jsonl").read_text().strip()
                       and (run_dir / "checkpoints" / "latest").exists()):
                assert time.time() < deadline, f"the Slurm run logged no metrics in 240s: {status(run_dir, senv)}"
                time.sleep(0.2)
            runs.lines_at_requeue = len((run_dir / "metrics.jsonl").read_text().splitlines())
            assert not (run_dir / "DONE").exists()
            subprocess.run(["scontrol", "requeue", run["job_ids"][0]], check=True, env=senv, timeout=30)
            runs.slurm_run = run
        yield runs
    finally:
        if reference.poll() is None:
            reference.kill()
            reference.wait()
        for run in (runs.subprocess_run, runs.slurm_run):
            if run and run.get("run_dir") and Path(run["run_dir"], "manifest.json").exists():
                igpo(["cancel", run["run_dir"]], runs.env, check=False)


def test_subprocess_executor_matches_local_run(tiny_runs):
    run = tiny_runs.subprocess_run
    assert run["executor"] == "subprocess" and run["job_ids"][0].isdigit()
    run_dir = Path(run["run_dir"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["executor"] == "local" and manifest["jobs"][0]["run_dir"] == str(run_dir)
    wait_file(run_dir / "DONE", 300, "subprocess run", alive=lambda: not (run_dir / "FAILED").exists())
    reference = tiny_runs.wait_reference()
    assert_same_record(run_dir, reference)
    deadline = time.time() + 30
    while (states := status(run_dir, tiny_runs.env)) != {run["job_ids"][0]: "COMPLETED"}:
        assert time.time() < deadline, states
        time.sleep(0.5)
    command = json.loads((run_dir / "run.json").read_text())["command"]  # the submitting command line
    assert command[command.index("--executor") + 1] == "subprocess"


def test_slurm_run_requeued_mid_run_resumes_and_matches_local_run(tiny_runs):
    if tiny_runs.slurm_run is None:
        pytest.skip(tiny_runs.slurm_skip or "Slurm unavailable")
    run, env = tiny_runs.slurm_run, tiny_runs.env
    run_dir, job_id = Path(run["run_dir"]), run["job_ids"][0]
    assert 1 <= tiny_runs.lines_at_requeue < 4
    wait_file(run_dir / "DONE", 300, "requeued Slurm run", alive=lambda: not (run_dir / "FAILED").exists())
    reference = tiny_runs.wait_reference()
    assert_same_record(run_dir, reference)
    info = json.loads((run_dir / "run.json").read_text())
    assert len(info["starts"]) == 2 and info["slurm_job_id"] == job_id  # started twice, same job id
    log = (run_dir / "submitit" / job_id / f"{job_id}_0_log.err").read_text()
    assert "DUE TO JOB REQUEUE" in log and "resumed from step_" in log
    assert (run_dir / "submitit" / job_id / f"{job_id}_submission.sh").read_text().startswith("#!/bin/bash")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["sbatch_script"].endswith(f"{job_id}_submission.sh") and manifest["cluster"] == "local"
    deadline = time.time() + 30
    while (states := status(run_dir, env)) != {job_id: "COMPLETED"}:
        assert time.time() < deadline, states
        time.sleep(0.5)
    # without sacct and squeue the result file answers
    data = json.loads(igpo(["status", str(run_dir), "--json"], failing_slurm_clients(tiny_runs.root, env)).stdout)
    assert [(j["state"], j["source"]) for j in data["jobs"]] == [("COMPLETED", "result")]
    # the same config again: already done, nothing submitted
    again = submit([*TINY_RL, "--executor", "slurm", "--cluster", "local", "--resources", "tiny",
                    "--runs-dir", str(tiny_runs.root / "slurm")], env)
    assert again.get("already_done") is True and "job_ids" not in again


def test_two_task_rl_run_forms_one_gloo_group(slurm_cluster, tmp_path):
    """-S tasks_per_node=2: both ranks run the trainer in one 2-process gloo group (accelerate, from the env
    submitit/Slurm set up); rank 0 alone writes the run record and the (rank-averaged) metrics."""
    if slurm_cluster.cpus < 2:
        pytest.skip(f"the Slurm node has {slurm_cluster.cpus} CPU; a 2-task job needs 2")
    env = {**cli_env(tmp_path), "SLURM_CONF": slurm_cluster.conf}
    out = submit(["tiny/igpo.gin", "-b", "entry.rl.max_steps = 2", "--executor", "slurm", "--cluster", "local",
                  "--resources", "tiny", "-S", "tasks_per_node=2", "--runs-dir", str(tmp_path / "runs"), "--wait"],
                 env)
    job_id, run_dir = out["job_ids"][0], Path(out["run_dir"])
    assert out["states"] == {job_id: "COMPLETED"} and out["num_tasks"] == 2
    results = []
    for task in (0, 1):
        with open(run_dir / "submitit" / job_id / f"{job_id}_{task}_result.pkl", "rb") as f:
            outcome, value = pickle.load(f)
        assert outcome == "success"
        results.append(value)
    assert [(r["rank"], r["world_size"], r["backend"]) for r in results] == [(0, 2, "gloo"), (1, 2, "gloo")]
    assert {r["steps"] for r in results} == {2}
    assert len(metrics(run_dir)) == 1  # one line per rollout batch, written by rank 0 only
    assert len(json.loads((run_dir / "run.json").read_text())["starts"]) == 1
    assert out["result"]["steps"] == 2 and "rank" not in out["result"]  # result.json is the job's own result


def test_cancel_status_and_logs(slurm_cluster, tmp_path):
    env = {**cli_env(tmp_path), "SLURM_CONF": slurm_cluster.conf}
    args = ["tiny/igpo.gin", "--executor", "slurm", "--cluster", "local", "--resources", "tiny",
            "--runs-dir", str(tmp_path / "runs")]
    run = submit(args, env)
    run_dir, job_id = run["run_dir"], run["job_ids"][0]
    deadline = time.time() + 120
    while (state := status(run_dir, env)[job_id]) != "RUNNING":
        assert state in ("PENDING", "CONFIGURING", "UNKNOWN") and time.time() < deadline, state
        time.sleep(0.3)
    again = igpo(["run", *args], env, check=False)  # a second submission of a running run is refused
    assert again.returncode == 2 and "already submitted" in again.stderr
    proc = igpo(["cancel", run_dir], env)
    assert f"cancelled {job_id}" in proc.stderr
    deadline = time.time() + 60
    while (state := status(run_dir, env)[job_id]) != "CANCELLED":
        assert time.time() < deadline, state
        time.sleep(0.3)
    assert job_id in json.loads(Path(run_dir, "manifest.json").read_text())["cancelled"]
    data = json.loads(igpo(["status", run_dir, "--json"], failing_slurm_clients(tmp_path, env)).stdout)
    assert data["jobs"][0]["state"] == "CANCELLED" and data["jobs"][0]["source"] in ("manifest", "log")
    logs = igpo(["logs", run_dir, "-n", "0", "--stream", "err"], env).stdout
    assert f"JOB {job_id} ON" in logs and "CANCELLED" in logs
    assert "nothing to cancel" in igpo(["cancel", run_dir], env).stderr
