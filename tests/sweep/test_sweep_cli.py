"""``igpo-kit sweep``: validation of every cell before running, --dry-run, shipped specs, resume of failed cells."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from igpo_kit.cli.main import app
from igpo_kit.errors import ConfigError
from igpo_kit.sweep import load_spec, plan, read_manifest

REPO = Path(__file__).resolve().parents[2]
SPECS = sorted((REPO / "recipes" / "ablations").glob("*.toml")) + \
    sorted((REPO / "recipes" / "tiny" / "ablations").glob("*.toml"))
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda p: str(p.relative_to(REPO / "recipes")))
def test_shipped_specs_expand_and_validate(spec_path, tmp_path):
    spec = load_spec(spec_path)
    sweep = plan(spec, tmp_path / "sweep")  # raises ConfigError listing every invalid cell
    assert sweep.cells and len({c.id for c in sweep.cells}) == len(sweep.cells)
    assert all(c.status == "pending" for c in sweep.cells)
    assert not (tmp_path / "sweep").exists()
    if spec.baseline:
        assert spec.baseline in {c.method for c in sweep.cells} | {a.name for a in spec.arms}


def test_every_paper_spec_has_a_tiny_version():
    paper = {p.name for p in (REPO / "recipes" / "ablations").glob("*.toml")}
    tiny = {p.name for p in (REPO / "recipes" / "tiny" / "ablations").glob("*.toml")}
    assert {"hint_ratio.toml", "entropy_tau.toml", "sample_matched.toml", "seeds.toml", "eval_temperature.toml",
            "noise_robustness.toml"} <= paper
    assert paper <= tiny | {p for p in paper if p.startswith("sft_")}


def test_paper_spec_contents():
    cells = plan(load_spec(REPO / "recipes/ablations/hint_ratio.toml"), "/nonexistent").cells
    assert len(cells) == 9 and {c.method for c in cells} == {"partial", "full", "no_hints"}
    noise = plan(load_spec(REPO / "recipes/ablations/noise_robustness.toml"), "/nonexistent").cells
    rhos = sorted({c.cell.values.get("RHO") for c in noise if c.cell.arm == "mixed"})
    assert rhos == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert "entry.rl.trace_corruption = @corruption.mixed()" in noise[-7].cell.bindings
    temps = plan(load_spec(REPO / "recipes/ablations/eval_temperature.toml"), "/nonexistent").cells
    assert "math500/tasks.task.num_samples = 5" in temps[0].cell.bindings and 1.2 in [
        c.cell.values["math500/sampler.low_confidence.temperature"] for c in temps]


def test_invalid_cells_all_reported_exit_2_nothing_runs(tmp_path):
    spec = write(tmp_path / "bad.toml", """
        base = "tiny/igpo.gin"
        [product]
        "entry.rl.max_steps" = [2, "two"]
        [[arm]]
        name = "ok"
        [[arm]]
        name = "typo"
        bindings = ["entry.rl.max_stepz = 3"]
    """)
    with pytest.raises(ConfigError) as e:
        plan(load_spec(spec), tmp_path / "sd")
    text = "\n".join(e.value.lines)
    assert "ok max_steps='two'" in text and "expected int" in text
    assert "max_stepz" in text and "did you mean max_steps" in text and "2 cells (typo max_steps=2" in text
    assert "3 of 4 cells invalid; nothing was run" in text
    r = invoke("sweep", spec, "--sweep-dir", tmp_path / "sd")
    assert r.exit_code == 2 and "max_stepz" in r.stderr
    assert not (tmp_path / "sd").exists()


def test_dry_run_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("IGPO_KIT_RUNS", str(tmp_path / "runs"))
    r = invoke("sweep", "tiny/ablations/hint_ratio.toml", "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    assert m["name"] == "tiny-hint_ratio" and len(m["cells"]) == 6
    assert {c["arm"] for c in m["cells"]} == {"partial", "full", "no_hints"}
    assert all(c["run_dir"].startswith("cells/") for c in m["cells"])
    assert "runs/sweeps/tiny-hint_ratio" in r.stderr and "nothing written" in r.stderr
    assert not (tmp_path / "runs").exists()
    r = invoke("sweep", "tiny/igpo.gin", "--axis", "SEED=0,1", "--axis", "entry.rl.hint_ratio_high=0.6,1.0",
               "-b", "entry.rl.max_steps=2", "--dry-run", "--sweep-dir", tmp_path / "sd")
    assert r.exit_code == 0 and "4 cells" in r.stdout and "hint_ratio_high" in r.stdout
    assert not (tmp_path / "sd").exists()
    assert invoke("sweep", "tiny/igpo.gin", "--axis", "SEED", "--dry-run").exit_code == 2
    r = invoke("sweep", "tiny/igpo.gin", "--executor", "slurm", "--dry-run")  # one cell: a plain sbatch script
    assert r.exit_code == 0 and r.stdout.startswith("#!/bin/bash") and "--array" not in r.stdout
    assert not (tmp_path / "runs").exists()
    assert invoke("sweep", "tiny/igpo.gin", "--executor", "slurmm", "--dry-run").exit_code == 2
    assert invoke("sweep", "tiny/ablations/nope.toml", "--dry-run").exit_code == 2


EVAL_SPEC = """
base = "tiny/eval.gin"
bindings = ["gsm8k/dataset.gsm8k.limit = 1", "gsm8k/sampler.low_confidence.gen_length = 16",
            "gsm8k/sampler.low_confidence.block_length = 16", "gsm8k/sampler.low_confidence.steps = 4",
            "entry.evaluate.progress = False"]
[product]
"gsm8k/dataset.gsm8k.path" = ["recipes/data/gsm8k_sample.jsonl", "{missing}"]
"""


def test_resume_reruns_only_failed_cells(tmp_path):
    missing = tmp_path / "later.jsonl"
    spec = write(tmp_path / "evals.toml", EVAL_SPEC.replace("{missing}", str(missing)))
    sd = tmp_path / "sd"
    r = invoke("sweep", spec, "--sweep-dir", sd)
    assert r.exit_code == 4, r.output  # one cell failed at run time (its data file does not exist yet)
    m = read_manifest(sd)
    assert m["counts"] == {"done": 1, "failed": 1}
    ok, bad = m["cells"]
    assert ok["status"] == "done" and bad["status"] == "failed" and "file not found" in bad["error"]
    assert (sd / bad["run_dir"] / "FAILED").exists() and (sd / ok["run_dir"] / "DONE").exists()
    assert "--resume" in r.stderr

    def starts(cell):
        return len(json.loads((sd / cell["run_dir"] / "run.json").read_text())["starts"])

    assert starts(ok) == 1 and starts(bad) == 1
    shutil.copy(REPO / "recipes/data/gsm8k_sample.jsonl", missing)  # fix the cause, keep the FAILED marker
    r = invoke("sweep", "--resume", sd)
    assert r.exit_code == 0, r.output
    assert "1 done, 1 to run" in r.stdout.replace("\n", " ")
    m2 = read_manifest(sd)
    assert m2["counts"] == {"done": 2} and [c["id"] for c in m2["cells"]] == [ok["id"], bad["id"]]
    assert starts(ok) == 1 and starts(bad) == 2  # only the failed cell ran again
    assert not (sd / bad["run_dir"] / "FAILED").exists() and (sd / bad["run_dir"] / "DONE").exists()
    info = json.loads((sd / bad["run_dir"] / "run.json").read_text())
    assert info["command"][:3] == ["igpo-kit", "run", str(REPO / "recipes/tiny/eval.gin")]
    assert info["command"][-2:] == ["--name", bad["id"]]
    # the same spec again into the same sweep dir: nothing to run
    r = invoke("sweep", spec, "--sweep-dir", sd)
    assert r.exit_code == 0 and starts(ok) == 1 and starts(bad) == 2
    assert invoke("sweep", spec, "--resume", sd).exit_code == 2  # spec and --resume: ambiguous


def test_slurm_sweep_checks_each_cell_against_its_profiles_processes(tmp_path):
    """A cell submitted with a profile of 40 tasks needs 2 x 40 problems per step: refused before anything is
    submitted, naming the cell and the profile; the arm on a 1-task profile is fine."""
    forty = write(tmp_path / "forty.toml", """
        nodes = 1
        tasks_per_node = 40
        time = 15
    """)
    spec = write(tmp_path / "wide.toml", f"""
        base = "tiny/igpo.gin"
        [[arm]]
        name = "one_task"
        [[arm]]
        name = "forty_tasks"
        resources = "{forty}"
    """)
    r = invoke("sweep", spec, "--executor", "slurm", "--cluster", "local", "--dry-run", "--sweep-dir", tmp_path / "sd")
    assert r.exit_code == 2, r.output
    text = r.stderr.replace("\n", " ")
    assert "cell forty_tasks" in text and "x processes (40) = 80" in text and "profile local/forty" in text, text
    assert "one_task" not in text and not (tmp_path / "sd").exists()
