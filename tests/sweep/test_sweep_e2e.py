"""One end-to-end sweep through the CLI: a tiny IGPO spec with 2 cells run as subprocesses, then its report."""

from __future__ import annotations

import json
import textwrap

from typer.testing import CliRunner

from igpo_kit.cli.main import app
from igpo_kit.sweep import read_manifest

runner = CliRunner()

SPEC = """
# 2 cells of tiny/igpo.gin at the smallest useful size: 2 optimizer steps, mu = 1
name = "e2e"
base = "tiny/igpo.gin"
baseline = "no_hints"
bindings = ["entry.rl.max_steps = 2", "entry.rl.inner_iters = 1", "entry.rl.group_size = 2",
            "entry.rl.prompts_per_step = 1", "sampler.low_confidence.gen_length = 16",
            "sampler.low_confidence.block_length = 16", "sampler.low_confidence.steps = 4"]

[[arm]]
name = "partial"

[[arm]]
name = "no_hints"
bindings = ["entry.rl.replacement_policy = @replacement_policy.none()"]
"""


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_tiny_sweep_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("IGPO_KIT_PROGRESS_EVERY", "0")  # a progress line at every update (not a terminal here)
    spec = tmp_path / "e2e.toml"
    spec.write_text(textwrap.dedent(SPEC))
    sd = tmp_path / "sweep"
    r = invoke("sweep", spec, "--sweep-dir", sd, "--max-parallel", "2")
    assert r.exit_code == 0, r.output
    m = read_manifest(sd)
    assert m["name"] == "e2e" and m["counts"] == {"done": 2} and m["executor"] == "local-subprocess"
    assert [c["arm"] for c in m["cells"]] == ["partial", "no_hints"]
    for c in m["cells"]:
        run_dir = sd / c["run_dir"]
        assert (run_dir / "DONE").exists() and (run_dir / "config.gin").exists()
        assert c["run_dir"].startswith(f"cells/{c['id']}/") and (sd / c["log"]).exists()
        lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [x["step"] for x in lines] == [1, 2] and "all_wrong_ratio_before" in lines[0]
        assert c["seconds"] > 0 and c["bindings"][0] == "entry.rl.max_steps = 2"
    assert "replacement_policy.none()" in (sd / m["cells"][1]["run_dir"] / "config.gin").read_text()
    # progress: the sweep's cells here, each cell's RL steps (with time left) in its log, as a Slurm log has them
    assert "progress: sweep cells 2/2 (100%)  done in " in r.stderr
    log = (sd / m["cells"][0]["log"]).read_text()
    assert "progress: rl steps 1/2 (50%)  elapsed " in log and "progress: rl steps 2/2 (100%)  done in " in log
    # rerun: every cell is DONE, nothing runs
    r = invoke("sweep", spec, "--sweep-dir", sd)
    assert r.exit_code == 0 and "2 done, 0 to run" in r.stdout.replace("\n", " ")
    # report on the sweep
    r = invoke("report", sd, "--out", tmp_path / "rep")
    assert r.exit_code == 0, r.output
    for f in ("report.md", "training_table.csv", "training_curves.png"):
        assert (tmp_path / "rep" / f).exists(), f
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| **no_hints** | 1 |" in md and "| partial | 1 |" in md and "(+0.000)" in md
