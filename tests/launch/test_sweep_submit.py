"""``igpo-kit sweep --executor slurm`` without a Slurm: the --dry-run sbatch array script, grouping of cells by
resources profile, the skip rules of a resubmission, and the CLI checks. (On the real local Slurm:
test_sweep_slurm.py.)"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from igpo_kit.cli.main import app
from igpo_kit.launch import sweep as launch_sweep
from igpo_kit.launch.manifest import JobEntry, JobStatus, Manifest
from igpo_kit.launch.profiles import load_profile
from igpo_kit.launch.sbatch import render_profile, sbatch_lines
from igpo_kit.sweep import load_spec, plan

runner = CliRunner()

EVAL3 = """
name = "three"
base = "tiny/eval.gin"
bindings = ["gsm8k/dataset.gsm8k.limit = 1"]
[product]
"entry.evaluate.seed" = [0, 1, 2]
"""

ARMS = """
name = "arms"
base = "tiny/igpo.gin"
resources = "sweep_cell"
bindings = ["entry.rl.max_steps = 2"]
[product]
SEED = [0, 1]
[[arm]]
name = "big"
[[arm]]
name = "small"
resources = "tiny"
bindings = ["entry.rl.group_size = 2"]
"""


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("IGPO_KIT_CLUSTER_FILE", raising=False)
    monkeypatch.delenv("IGPO_KIT_RUNS", raising=False)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_dry_run_prints_the_array_script_and_touches_nothing(tmp_path):
    spec = write(tmp_path / "three.toml", EVAL3)
    sd = tmp_path / "sd"
    r = invoke("sweep", spec, "--executor", "slurm", "--cluster", "local", "--max-parallel", "2", "--sweep-dir", sd,
               "--dry-run")
    assert r.exit_code == 0, r.output
    assert not sd.exists()
    expected = render_profile(load_profile("local", "eval", ["array_parallelism=2"]), sd.absolute() / "submitit" / "%j",
                              name="igpo-three", array_size=3)
    assert r.stdout == expected  # stdout is exactly the script; the cells table and notes are on stderr
    flags = sbatch_lines(r.stdout)
    assert flags["--array"] == "0-2%2" and flags["--partition"] == "debug" and flags["--job-name"] == "igpo-three"
    assert "3 cells (0 done, 3 to submit)" in r.stderr.replace("\n", " ") and "nothing was written" in r.stderr
    # --json: the scripts are in the JSON (stdout stays parseable)
    r = invoke("sweep", spec, "--executor", "slurm", "--cluster", "local", "--sweep-dir", sd, "--dry-run", "--json")
    data = json.loads(r.stdout)
    (group,) = data["slurm"]["groups"]
    assert group["resources"] == "eval" and group["array_parallelism"] == 32 and len(group["cells"]) == 3
    assert "#SBATCH --array=0-2%3" in group["sbatch_script"] and not sd.exists()  # submitit: %min(limit, n)


def test_cells_are_grouped_by_resources_profile(tmp_path):
    spec = write(tmp_path / "arms.toml", ARMS)
    sd = tmp_path / "sd"
    r = invoke("sweep", spec, "--executor", "slurm", "--sweep-dir", sd, "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    groups = json.loads(r.stdout)["slurm"]["groups"]
    assert [(g["cluster"], g["resources"], len(g["cells"])) for g in groups] == [("h100", "sweep_cell", 2),
                                                                                ("h100", "tiny", 2)]
    big, small = (sbatch_lines(g["sbatch_script"]) for g in groups)
    assert (big["--gpus-per-node"], big["--ntasks-per-node"], big["--array"]) == ("8", "8", "0-1%2")
    assert (small["--gpus-per-node"], small["--ntasks-per-node"], small["--time"]) == ("1", "1", "15")
    # --resources puts every cell in one group; -S applies to all; the CLI prints one script per group
    r = invoke("sweep", spec, "--executor", "slurm", "--resources", "tiny", "-S", "time=5", "--sweep-dir", sd,
               "--dry-run", "--json")
    (group,) = json.loads(r.stdout)["slurm"]["groups"]
    assert len(group["cells"]) == 4 and sbatch_lines(group["sbatch_script"])["--time"] == "5"
    r = invoke("sweep", spec, "--executor", "slurm", "--sweep-dir", sd, "--dry-run")
    assert r.stdout.count("#!/bin/bash") == 2 and "# ---- group 2 of 2 ----" in r.stdout
    assert not sd.exists()


def test_resources_of_a_cell(tmp_path):
    sw = plan(load_spec(write(tmp_path / "arms.toml", ARMS)), tmp_path / "sd")
    assert [launch_sweep.cell_resources(sw, c) for c in sw.cells] == ["sweep_cell"] * 2 + ["tiny"] * 2
    assert {launch_sweep.cell_resources(sw, c, "rl") for c in sw.cells} == {"rl"}
    ev = plan(load_spec(write(tmp_path / "three.toml", EVAL3)), tmp_path / "sd")
    assert {launch_sweep.cell_resources(ev, c) for c in ev.cells} == {"eval"}  # evaluation cells by job kind
    sw.spec.resources, sw.spec.arms[1].resources = None, None
    assert {launch_sweep.cell_resources(sw, c) for c in sw.cells} == {"sweep_cell"}


def _fake_previous(sd: Path, sw, states: list[str], monkeypatch) -> Manifest:
    """A manifest.json in ``sd`` listing one job per cell, with the given Slurm states."""
    jobs = [JobEntry(job_id=f"7_{i}", array_index=i, run_dir=str(Path(c.run_dir).absolute()), cell=c.id)
            for i, c in enumerate(sw.cells)]
    m = Manifest(executor="slurm", jobs=jobs, kind="sweep", name=sw.spec.name)
    m.save(sd)
    by_id = dict(zip((j.job_id for j in jobs), states))
    monkeypatch.setattr(launch_sweep, "job_records", lambda man: [
        JobStatus(j.job_id, by_id.get(j.job_id, "UNKNOWN"), "squeue", j.array_index, j.run_dir, j.cell)
        for j in man.jobs])
    return m


def test_resubmission_skips_done_and_still_active_cells(tmp_path, monkeypatch):
    spec = write(tmp_path / "three.toml", EVAL3)
    sd = tmp_path / "sd"
    sw = plan(load_spec(spec), sd)
    _fake_previous(sd, sw, ["COMPLETED", "RUNNING", "CANCELLED"], monkeypatch)
    done_dir = Path(sw.cells[0].run_dir)
    done_dir.mkdir(parents=True)
    (done_dir / "DONE").write_text("")
    before = (sd / "manifest.json").read_text()
    r = invoke("sweep", spec, "--executor", "slurm", "--cluster", "local", "--sweep-dir", sd, "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)["slurm"]
    assert out["skipped"] == {"done": [sw.cells[0].id], "active": {sw.cells[1].id: "7_1 RUNNING"}}
    (group,) = out["groups"]
    assert group["cells"] == [sw.cells[2].id] and "--array" not in sbatch_lines(group["sbatch_script"])
    assert (sd / "manifest.json").read_text() == before and not (sd / "sweep_manifest.json").exists()
    # running the sweep here while a cell is still on Slurm is refused
    r = invoke("sweep", spec, "--sweep-dir", sd)
    assert r.exit_code == 2 and f"cell {sw.cells[1].id} is still RUNNING on Slurm (job 7_1)" in r.stderr
    assert launch_sweep.active_cells(sd).keys() == {str(Path(sw.cells[1].run_dir).absolute())}
    # every cell done: nothing to submit (no sbatch needed), manifest.json untouched
    for c in sw.cells[1:]:
        Path(c.run_dir).mkdir(parents=True)
        (Path(c.run_dir) / "DONE").write_text("")
    r = invoke("sweep", spec, "--executor", "slurm", "--cluster", "local", "--sweep-dir", sd, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)["slurm"]
    assert out["job_ids"] == [] and len(out["skipped"]["done"]) == 3 and "nothing to submit" in r.stderr
    assert (sd / "manifest.json").read_text() == before


def test_cli_checks(tmp_path, monkeypatch):
    spec = write(tmp_path / "three.toml", EVAL3)
    sd = tmp_path / "sd"
    for extra in (["--wait"], ["--cluster", "local"], ["-S", "time=5"], ["--resources", "tiny"]):
        r = invoke("sweep", spec, "--sweep-dir", sd, "--dry-run", *extra)
        assert r.exit_code == 2 and "only apply to --executor slurm" in r.stderr, extra
    r = invoke("sweep", spec, "--executor", "slurm", "-S", "nodez=2", "--sweep-dir", sd, "--dry-run")
    assert r.exit_code == 2 and "did you mean 'nodes'" in r.stderr
    r = invoke("sweep", spec, "--executor", "slurm", "--cluster", "nope", "--sweep-dir", sd, "--dry-run")
    assert r.exit_code == 2 and "unknown cluster profile 'nope'" in r.stderr
    monkeypatch.setattr(launch_sweep.shutil, "which", lambda name: None)
    r = invoke("sweep", spec, "--executor", "slurm", "--cluster", "local", "--sweep-dir", sd)
    assert r.exit_code == 2 and "sbatch/srun not found" in r.stderr
    assert not (sd / "manifest.json").exists()


def test_logs_and_cancel_pick_a_sweep_job_by_cell_id(tmp_path):
    from igpo_kit.cli.launch_cmds import _select
    from igpo_kit.errors import ConfigError

    m = Manifest(executor="slurm", kind="sweep", jobs=[
        JobEntry(job_id="5_0", array_index=0, cell="a-1"), JobEntry(job_id="5_1", array_index=1, cell="a-2"),
        JobEntry(job_id="9", array_index=None, cell="b-1"), JobEntry(job_id="10_0", array_index=0, cell="b-2")])
    assert _select(m, "5_1").cell == "a-2" and _select(m, "b-1").job_id == "9"
    with pytest.raises(ConfigError, match="matches 2 jobs"):
        _select(m, "0")  # array index 0 of two arrays
    with pytest.raises(ConfigError, match="cells: a-1, a-2, b-1, b-2"):
        _select(m, "zzz")
