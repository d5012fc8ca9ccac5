"""``run --executor slurm|subprocess --dry-run``, resource defaults, the manifest-less ``status`` fallback and
rank-0-only run records; none of these needs Slurm."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from igpo_kit.cli.main import app
from igpo_kit.launch.profiles import load_profile
from igpo_kit.launch.sbatch import render_profile, sbatch_lines
from igpo_kit.launch.submit import default_resources

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("IGPO_KIT_CLUSTER_FILE", raising=False)
    for var in ("RANK", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_dry_run_prints_the_sbatch_script_and_writes_nothing(tmp_path):
    runs = tmp_path / "runs"
    r = invoke("run", "tiny/igpo.gin", "--executor", "slurm", "--cluster", "local", "--resources", "tiny",
               "-S", "tasks_per_node=2", "--runs-dir", runs, "--dry-run")
    assert r.exit_code == 0, r.output
    assert not runs.exists()
    run_dir = next(line.split("-> ", 1)[1].strip() for line in r.stderr.splitlines() if "-> " in line)
    expected = render_profile(load_profile("local", "tiny", ["tasks_per_node=2"]), Path(run_dir) / "submitit" / "%j",
                              name="igpo-igpo")
    assert r.stdout == expected + ("" if expected.endswith("\n") else "\n")
    flags = sbatch_lines(r.stdout)
    assert flags["--ntasks-per-node"] == "2" and flags["--partition"] == "debug"
    assert "export OMP_NUM_THREADS=1" in r.stdout


def test_paper_run_defaults_to_8_nodes_of_8_gpus_and_shrinks_with_overrides(tmp_path):
    r = invoke("run", "igpo_full.gin", "--executor", "slurm", "--runs-dir", tmp_path / "runs", "--dry-run")
    assert r.exit_code == 0, r.output
    flags = sbatch_lines(r.stdout)
    assert (flags["--nodes"], flags["--ntasks-per-node"], flags["--gpus-per-node"]) == ("8", "8", "8")
    assert flags["--signal"] == "USR2@180" and "h100/rl" in r.stderr
    r = invoke("run", "igpo_full.gin", "--executor", "slurm", "-S", "nodes=1", "-S", "partition=gpu",
               "--runs-dir", tmp_path / "runs", "--dry-run")
    flags = sbatch_lines(r.stdout)
    assert (flags["--nodes"], flags["--ntasks-per-node"], flags["--partition"]) == ("1", "8", "gpu")
    assert not (tmp_path / "runs").exists()


def test_resources_default_by_job_kind():
    assert [default_resources(k) for k in ("rl", "sft", "evaluate", "other")] == ["rl", "sft", "eval", "tiny"]
    assert default_resources("rl", "subprocess") == "tiny"


def test_subprocess_executor_rejects_multi_node(tmp_path):
    r = invoke("run", "tiny/igpo.gin", "--executor", "subprocess", "--resources", "rl", "--runs-dir",
               tmp_path / "runs", "--dry-run")
    assert r.exit_code == 2 and "-S nodes=1" in r.stderr


def test_status_of_a_local_run_dir_without_manifest(tmp_path):
    d = tmp_path / "runs" / "x" / "abc"
    d.mkdir(parents=True)
    (d / "config.gin").write_text("")
    (d / "DONE").write_text("")
    r = invoke("status", d, "--json")
    assert r.exit_code == 0, r.output
    assert [(j["state"], j["source"]) for j in json.loads(r.stdout)["jobs"]] == [("COMPLETED", "marker")]
    r = invoke("status", tmp_path)
    assert r.exit_code == 2 and "no manifest.json" in r.stderr
    assert invoke("cancel", d).exit_code == 2


@pytest.mark.parametrize("rank", [None, "1"])
def test_only_rank_0_writes_the_run_record(tmp_path, monkeypatch, rank):
    from igpo_kit import config as cfg
    from igpo_kit import runner

    text = cfg.parse("tiny/eval.gin").text
    seen = []
    monkeypatch.setattr(cfg, "call_job", lambda config, run: seen.append(run.dir) or {"score": 1.0})
    if rank is not None:
        monkeypatch.setenv("RANK", rank)
    run_dir = tmp_path / "run"
    result = runner.execute(text, ["X=1"], run_dir)
    assert result == {"score": 1.0, "run_dir": str(run_dir)} and seen == [run_dir]
    written = sorted(p.name for p in run_dir.iterdir())
    if rank is None:
        assert {"DONE", "config.gin", "run.json", "result.json", "operative_config.gin"} <= set(written)
    else:
        assert written == []


def test_process_rank_prefers_rank_then_slurm_procid(monkeypatch):
    from igpo_kit.runner import process_rank

    assert process_rank() == 0
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert process_rank() == 3
    monkeypatch.setenv("RANK", "5")
    assert process_rank() == 5


def test_wait_polls_until_terminal_and_gives_up_on_lost_jobs():
    from rich.console import Console

    from igpo_kit.launch.manifest import JobEntry, JobStatus, Manifest
    from igpo_kit.launch.status import wait

    m = Manifest(executor="slurm", jobs=[JobEntry(job_id="7")])
    states = iter(["PENDING", "RUNNING", "REQUEUED", "RUNNING", "COMPLETED"])
    recs = wait(m, console=Console(file=io.StringIO()), poll_s=0.01,
                records_fn=lambda _: [JobStatus("7", next(states), "squeue")])
    assert [r.state for r in recs] == ["COMPLETED"]
    recs = wait(m, console=Console(file=io.StringIO()), poll_s=0.01, lost_s=0.05,
                records_fn=lambda _: [JobStatus("7", "UNKNOWN", "none")])
    assert [r.state for r in recs] == ["UNKNOWN"]


def test_a_recipe_names_its_resources_profile(tmp_path):
    from igpo_kit.launch.submit import recipe_resources

    text = (Path(__file__).resolve().parents[2] / "recipes" / "tiny" / "eval.gin").read_text()
    recipe = tmp_path / "eval_h100.gin"
    recipe.write_text("# An evaluation on one full node.\n# igpo-kit: resources = sweep_cell\n" + text)
    assert recipe_resources(recipe) == "sweep_cell" and recipe_resources("tiny/eval.gin") is None
    r = invoke("run", recipe, "--executor", "slurm", "--runs-dir", tmp_path / "runs", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "h100/sweep_cell" in r.stderr and sbatch_lines(r.stdout)["--ntasks-per-node"] == "8"
    r = invoke("run", recipe, "--executor", "slurm", "--resources", "eval", "--runs-dir", tmp_path / "runs",
               "--dry-run")
    assert "h100/eval" in r.stderr  # --resources wins
    late = tmp_path / "late.gin"
    late.write_text(text + "\n# igpo-kit: resources = rl\n")  # only the leading comment block counts
    assert recipe_resources(late) is None
