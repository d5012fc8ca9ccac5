"""``igpo-kit sweep --executor slurm`` on the real local Slurm (``slurm_cluster``), through the CLI in subprocesses.

The module fixture submits a 3-cell sweep of the tiny evaluation recipe (seeds 0, 1, 2; one GSM8K problem,
16 tokens) with ``--max-parallel 2 --wait``: one job array ``--array=0-2%2``. The second test then takes one cell
back (removes its DONE), resubmits with ``--resume``, cancels that submission, and resumes again: only that cell
is ever resubmitted and it finishes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from igpo_kit.cli.main import main; main()"]

SPEC = """
name = "three"
base = "tiny/eval.gin"
bindings = ["gsm8k/dataset.gsm8k.limit = 1", "gsm8k/sampler.low_confidence.gen_length = 16",
            "gsm8k/sampler.low_confidence.block_length = 16", "gsm8k/sampler.low_confidence.steps = 4",
            "entry.evaluate.progress = False"]
[product]
"entry.evaluate.seed" = [0, 1, 2]
"""
SLURM = ["--executor", "slurm", "--cluster", "local"]


def cli_env(tmp: Path, conf: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("IGPO_KIT_CLUSTER_FILE", "IGPO_KIT_RUNS", "RANK")}
    env.update(OMP_NUM_THREADS="1", XDG_CONFIG_HOME=str(tmp / "xdg"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", IGPO_KIT_DEBUG="0", SLURM_CONF=conf)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def igpo(args: list, env: dict[str, str], check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
    args = [str(a) for a in args]
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"igpo-kit {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def states(sweep_dir: Path, env: dict[str, str]) -> dict[str, str]:
    """``{cell id: STATE}`` from ``igpo-kit status SWEEP_DIR --json``."""
    data = json.loads(igpo(["status", sweep_dir, "--json"], env).stdout)
    return {j["cell"]: j["state"] for j in data["jobs"]}


def wait_states(sweep_dir: Path, env: dict[str, str], want: dict[str, str], timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while (got := states(sweep_dir, env)) != want:
        assert time.time() < deadline, f"wanted {want}, got {got}"
        time.sleep(0.5)


def starts(run_dir: Path) -> int:
    return len(json.loads((run_dir / "run.json").read_text())["starts"])


@pytest.fixture(scope="module")
def three_cells(slurm_cluster, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep_slurm")
    env = cli_env(root, slurm_cluster.conf)
    spec = root / "three.toml"
    spec.write_text(textwrap.dedent(SPEC))
    sd = root / "sweep"
    dry = igpo(["sweep", spec, *SLURM, "--max-parallel", "2", "--sweep-dir", sd, "--dry-run"], env)
    assert not sd.exists(), "--dry-run wrote something"
    t0 = time.time()
    proc = igpo(["sweep", spec, *SLURM, "--max-parallel", "2", "--sweep-dir", sd, "--wait", "--poll", "0.5", "--json"],
                env, check=False)
    out = {"root": root, "env": env, "spec": spec, "sd": sd, "dry": dry, "proc": proc, "seconds": time.time() - t0}
    try:
        yield out
    finally:
        if (sd / "manifest.json").exists():
            igpo(["cancel", sd], env, check=False)


def test_three_cell_sweep_is_one_job_array_and_every_cell_finishes(three_cells):
    proc, sd, env = three_cells["proc"], three_cells["sd"], three_cells["env"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    slurm = data["slurm"]
    (group,) = slurm["groups"]  # one resources profile -> one array
    array = group["array_id"]
    assert group["resources"] == "eval" and group["cluster"] == "local" and group["array_parallelism"] == 2
    assert group["job_ids"] == [f"{array}_{i}" for i in range(3)]
    assert set(slurm["states"].values()) == {"COMPLETED"}
    cells = data["cells"]
    assert [c["status"] for c in cells] == ["done"] * 3 and group["cells"] == [c["id"] for c in cells]
    # the script submitted is the --dry-run preview, byte for byte
    script = Path(group["sbatch_script"]).read_text()
    assert "#SBATCH --array=0-2%2" in script and "#SBATCH --partition=debug" in script
    assert three_cells["dry"].stdout == script
    # manifest.json: one entry per cell with its job id, run dir, logs; the sweep manifest records the jobs
    manifest = json.loads((sd / "manifest.json").read_text())
    assert manifest["kind"] == "sweep" and manifest["executor"] == "slurm"
    assert manifest["sbatch_script"] == group["sbatch_script"]
    assert [(j["cell"], j["job_id"]) for j in manifest["jobs"]] == list(zip(group["cells"], group["job_ids"]))
    sweep_manifest = json.loads((sd / "sweep_manifest.json").read_text())
    assert sweep_manifest["executor"] == "slurm" and sweep_manifest["launch"]["max_parallel"] == 2
    for job, cell in zip(manifest["jobs"], sweep_manifest["cells"]):
        run_dir = sd / cell["run_dir"]
        assert job["run_dir"] == str(run_dir) and cell["job_id"] == job["job_id"]
        assert (run_dir / "DONE").exists() and json.loads((run_dir / "result.json").read_text())["gsm8k"]
        info = json.loads((run_dir / "run.json").read_text())
        assert info["slurm_job_id"] and len(info["starts"]) == 1
        assert info["command"][:2] == ["igpo-kit", "run"] and info["command"][-2:] == ["--name", cell["id"]]
        assert Path(job["stderr"]).is_file()
    # status reads the manifest; logs picks a cell by id
    assert states(sd, env) == {c: "COMPLETED" for c in group["cells"]}
    logs = igpo(["logs", sd, "--job", group["cells"][1], "--stream", "out", "-n", "0"], env).stdout
    assert "Job completed successfully" in logs
    assert "pick one with --job" in igpo(["logs", sd], env, check=False).stderr


def test_resume_resubmits_only_cells_without_done_and_cancel_cancels(three_cells):
    sd, env = three_cells["sd"], three_cells["env"]
    if three_cells["proc"].returncode != 0:
        pytest.skip("the 3-cell sweep did not finish (see the test above)")
    first = json.loads((sd / "manifest.json").read_text())
    run_dirs = [Path(j["run_dir"]) for j in first["jobs"]]
    cell_ids = [j["cell"] for j in first["jobs"]]
    (run_dirs[1] / "DONE").unlink()  # this cell has to run again; the other two are done
    # fire and forget: returns with the job submitted
    t0 = time.time()
    sub = json.loads(igpo(["sweep", "--resume", sd, "--json"], env).stdout)["slurm"]
    assert time.time() - t0 < 60
    assert sub["skipped"]["done"] == [cell_ids[0], cell_ids[2]]
    (group,) = sub["groups"]
    assert group["cells"] == [cell_ids[1]] and group["array_id"] is None  # a group of one is a plain job
    victim = group["job_ids"][0]
    # cancel cancels (queued or running), and the cancellation is recorded
    proc = igpo(["cancel", sd], env)
    assert f"cancelled {victim}" in proc.stderr
    wait_states(sd, env, {cell_ids[0]: "COMPLETED", cell_ids[1]: "CANCELLED", cell_ids[2]: "COMPLETED"}, 60)
    assert victim in json.loads((sd / "manifest.json").read_text())["cancelled"]
    assert not (run_dirs[1] / "DONE").exists()
    # --resume again (the recorded executor is slurm): only the cancelled cell goes, and it finishes
    proc = igpo(["sweep", "--resume", sd, "--wait", "--poll", "0.5", "--json"], env)
    again = json.loads(proc.stdout)["slurm"]
    (group,) = again["groups"]
    assert group["cells"] == [cell_ids[1]] and group["job_ids"][0] != victim
    new = group["job_ids"][0]
    assert again["states"] == {first["jobs"][0]["job_id"]: "COMPLETED", new: "COMPLETED",
                               first["jobs"][2]["job_id"]: "COMPLETED"}
    assert (run_dirs[1] / "DONE").exists() and starts(run_dirs[0]) == starts(run_dirs[2]) == 1
    manifest = json.loads((sd / "manifest.json").read_text())
    assert [j["job_id"] for j in manifest["jobs"]] == [first["jobs"][0]["job_id"], new, first["jobs"][2]["job_id"]]
    assert manifest["extra"]["previous_jobs"] == [first["jobs"][1]["job_id"], victim]
    assert manifest["extra"]["submissions"] == 3
