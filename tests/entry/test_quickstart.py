"""entry.quickstart end to end through the CLI, shrunk to seconds: cached SFT, GRPO and IGPO arms, eval, report;
a second run (another RL seed) reuses the SFT cache and runs no SFT step."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from igpo_kit.cli.main import app

runner = CliRunner()

# the SFT through its macros (recipes/tiny/_quickstart_sft.gin), the way the recipes that share it are shrunk too
SFT_SHRINK = ["SFT_STEPS=6", "SFT_BATCH_SIZE=4", "SFT_WARMUP_STEPS=1", "SFT_EXAMPLES=24"]
SHRINK = SFT_SHRINK + [
    "entry.quickstart.sft_checkpoint_every=3", "rl/dataset.arithmetic.n=8",
    "test/dataset.arithmetic.n=4", "entry.quickstart.max_steps=2", "entry.quickstart.prompts_per_step=1",
    "entry.quickstart.group_size=4", "GEN_LENGTH=32", "rollout/sampler.low_confidence.steps=8",
    "greedy/sampler.low_confidence.steps=8",
]


def run_quickstart(runs: Path, *extra: str):
    args = ["run", "recipes/quickstart.gin", "--runs-dir", str(runs), "--json"]
    for b in SHRINK + list(extra):
        args += ["-b", b]
    r = runner.invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    return json.loads("\n".join(lines[next(i for i, line in enumerate(lines) if line == "{"):]))


def test_recipe_validates():
    r = runner.invoke(app, ["validate", "recipes/quickstart.gin"], catch_exceptions=False)
    assert r.exit_code == 0, r.output


def test_quickstart_end_to_end_and_sft_cache(tmp_path):
    runs = tmp_path / "runs"
    first = run_quickstart(runs)
    run_dir = Path(first["run_dir"])
    assert run_dir.parent == runs / "quickstart" and (run_dir / "DONE").exists()

    # SFT: trained once, cached by content next to the run directories
    sft = first["sft"]
    assert sft["reused"] is False and sft["steps_run"] == 6
    cache = runs / "quickstart" / "_cache" / f"sft-{sft['key']}"
    assert Path(sft["model_dir"]) == cache / "model" and (cache / "model" / "config.json").is_file()
    assert len((cache / "metrics.jsonl").read_text().splitlines()) == 6
    assert json.loads((cache / "key.json").read_text())["settings"]["max_steps"] == 6

    # both arms: run records with one metrics line per step, the final model, a greedy evaluation
    for arm in ("grpo", "igpo"):
        arm_dir = run_dir / "arms" / arm / "seed_0"
        assert (arm_dir / "DONE").exists(), arm
        info = json.loads((arm_dir / "run.json").read_text())
        assert info["arm"] == arm and info["seed"] == 0 and info["status"] == "done"
        metrics = [json.loads(line) for line in (arm_dir / "metrics.jsonl").read_text().splitlines()]
        assert [m["step"] for m in metrics] == [1, 2]
        assert all(0.0 <= m["all_wrong_ratio_after"] <= m["all_wrong_ratio_before"] <= 1.0 for m in metrics)
        if arm == "grpo":  # no rescue: nothing is replaced and the ratio is the policy's own
            assert all(m["replaced_rows_K"] == 0 and m["all_wrong_ratio_after"] == m["all_wrong_ratio_before"]
                       for m in metrics)
        assert (arm_dir / "model" / "config.json").is_file()
        assert json.loads((arm_dir / "eval" / "summary.json").read_text())["problems"] == 4
        assert 0.0 <= first["eval"][arm]["0"] <= 1.0
    assert json.loads((run_dir / "eval" / "sft" / "summary.json").read_text())["problems"] == 4

    # report: markdown + CSV table with both arms and the SFT start, and the two PNG plots
    report = run_dir / "report"
    for name in ("report.md", "table.csv", "accuracy.png", "all_wrong_ratio.png"):
        assert (report / name).is_file() and (report / name).stat().st_size > 0, name
    assert (report / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    csv_rows = (report / "table.csv").read_text().splitlines()
    assert csv_rows[0].startswith("method,seeds,steps") and "all-wrong after" in csv_rows[0]
    assert [row.split(",")[0] for row in csv_rows[1:]] == ["sft (start)", "grpo", "igpo"]
    assert "| igpo | 1 |" in (report / "report.md").read_text()

    # a second run with another RL seed: a new run directory, the same SFT cache, no SFT step
    second = run_quickstart(runs, "SEED=1")
    assert Path(second["run_dir"]) != run_dir
    assert second["sft"] == {**sft, "reused": True, "steps_run": 0, "seconds": second["sft"]["seconds"]}
    assert len((cache / "metrics.jsonl").read_text().splitlines()) == 6
    assert (Path(second["run_dir"]) / "arms" / "igpo" / "seed_1" / "DONE").exists()


def test_rl_recipes_start_from_the_quickstarts_sft(tmp_path, monkeypatch):
    """tiny/igpo_sft.gin's model (model.cached_sft) makes the quickstart's SFT call: the same key, so with the same
    SFT values it loads the quickstart's cache (default root <runs root>/quickstart/_cache) instead of training."""
    runs = tmp_path / "runs"
    sft = run_quickstart(runs)["sft"]
    assert sft["reused"] is False
    monkeypatch.setenv("IGPO_KIT_RUNS", str(runs))
    args = ["run", "tiny/igpo_sft.gin", "--json", "-b", "entry.rl.max_steps=1", "-b", "entry.rl.group_size=2",
            "-b", "GEN_LENGTH=32", "-b", "rollout/sampler.low_confidence.steps=8"]
    for b in SFT_SHRINK:
        args += ["-b", b]
    r = runner.invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert f"SFT start {sft['key']}: reused" in r.output
    assert [p.name for p in (runs / "quickstart" / "_cache").iterdir()] == [f"sft-{sft['key']}"]
    assert len((Path(sft["model_dir"]).parent / "metrics.jsonl").read_text().splitlines()) == 6  # trained once
    # another SFT value: another key, a new SFT in the same cache
    r = runner.invoke(app, args + ["-b", "SFT_STEPS=2"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "trained (2 steps)" in r.output and len(list((runs / "quickstart" / "_cache").iterdir())) == 2


def test_fast_quickstart_runs_with_cached_rollouts(tmp_path):
    """recipes/quickstart_fast.gin: the tiny native LLaDA, dual-cache rollouts, exact greedy evaluation, end to end."""
    shrink = [b.replace("rollout/sampler.low_confidence", "rollout/sampler.dual_cache") for b in SHRINK]
    args = ["run", "recipes/quickstart_fast.gin", "--runs-dir", str(tmp_path / "runs"), "--json"]
    for b in shrink:
        args += ["-b", b]
    r = runner.invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    run_dir = next((tmp_path / "runs" / "quickstart_fast").glob("[0-9a-f]*"))
    config = (run_dir / "config.gin").read_text()
    assert "sampler.dual_cache" in config and "architecture = 'llada'" in config
    for arm in ("grpo", "igpo"):
        assert (run_dir / "arms" / arm / "seed_0" / "DONE").exists(), arm
    igpo = [json.loads(x) for x in (run_dir / "arms" / "igpo" / "seed_0" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in igpo] == [1, 2]
