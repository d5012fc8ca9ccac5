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
    "entry.quickstart.arm_processes=1",  # in this process (the parallel runs: test_arms_in_parallel_processes_...)
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


def _metrics(run_dir: Path, arm: str) -> list[dict]:
    """An arm's metrics lines without the timings (the only fields two identical runs may differ in)."""
    path = run_dir / "arms" / arm / "seed_0" / "metrics.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    return [{k: v for k, v in m.items() if not k.endswith("_s")} for m in lines]


def test_arms_in_parallel_processes_train_what_one_process_trains(sft_start, monkeypatch):
    """arm_processes=2 (each RL run in a spawned process, its log in the run's log.txt) gives every arm the same
    metrics, step by step, and the same held-out accuracy as the runs one after the other in this process."""
    monkeypatch.setenv("IGPO_KIT_RUNS", str(sft_start.root))
    small = sft_start.bindings + ["entry.quickstart.max_steps=3", "test/dataset.arithmetic.n=8",
                                  "rl/dataset.arithmetic.n=16"]
    out = {}
    for processes in (1, 2):
        args = ["run", "recipes/quickstart.gin", "--json", "-b", f"entry.quickstart.arm_processes={processes}"]
        for b in small:
            args += ["-b", b]
        r = runner.invoke(app, args, catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert "SFT reused" in r.output  # the session's SFT start, not a new SFT
        lines = r.stdout.splitlines()
        out[processes] = json.loads("\n".join(lines[next(i for i, line in enumerate(lines) if line == "{"):]))
    one, two = (Path(out[p]["run_dir"]) for p in (1, 2))
    assert one != two
    igpo = _metrics(one, "igpo")
    assert sum(m["reward"] for m in igpo) > 0 and sum(m["replaced_rows_K"] for m in igpo) > 0  # not all zeros
    for arm in ("grpo", "igpo"):
        assert _metrics(two, arm) == _metrics(one, arm), arm
        assert out[2]["eval"][arm] == out[1]["eval"][arm]
        log = (two / "arms" / arm / "seed_0" / "log.txt").read_text()
        assert "step     3" in log and "progress: rl steps 3/3" in log
        assert not (one / "arms" / arm / "seed_0" / "log.txt").exists()


def test_arm_processes_below_one_is_refused_before_the_sft(tmp_path):
    args = ["run", "recipes/quickstart.gin", "--runs-dir", str(tmp_path), "-b", "entry.quickstart.arm_processes=0"]
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "entry.quickstart.arm_processes = 0: must be >= 1" in r.output
    assert not list(tmp_path.glob("quickstart/_cache/sft-*"))


def test_killed_quickstart_takes_its_rl_processes_with_it_and_resumes(sft_start, tmp_path):
    """kill -9 of the quickstart while its RL runs train in worker processes: the workers end too (nothing trains
    unseen), and the same command again resumes every run from its last checkpoint and finishes it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "IGPO_KIT_RUNS": str(sft_start.root), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "igpo_kit.cli.main", "run", "recipes/quickstart.gin", "-b",
           "entry.quickstart.arm_processes=2"]
    for b in sft_start.bindings + ["entry.quickstart.max_steps=8", "entry.quickstart.checkpoint_every=2",
                                   "entry.quickstart.prompts_per_step=1", "entry.quickstart.group_size=4",
                                   "test/dataset.arithmetic.n=2", "rl/dataset.arithmetic.n=16", "SEED=5"]:
        cmd += ["-b", b]
    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "log", "w"))
    runs = sft_start.root / "quickstart"

    def lines(arm: str) -> int:
        return sum(len(p.read_text().splitlines()) for p in runs.glob(f"*/arms/{arm}/seed_5/metrics.jsonl"))

    deadline = time.monotonic() + 300
    while not (lines("grpo") >= 3 and lines("igpo") >= 3):
        assert parent.poll() is None and time.monotonic() < deadline, (tmp_path / "log").read_text()
        time.sleep(0.2)
    workers = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) >= 2  # the two RL runs (and the pool's resource tracker)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{w}").exists() and "Z" not in Path(f"/proc/{w}/stat").read_text().split()[2]
              for w in workers):
        assert time.monotonic() < deadline, "a worker outlived the killed quickstart"
        time.sleep(0.2)
    before = {arm: lines(arm) for arm in ("grpo", "igpo")}
    assert all(n < 8 for n in before.values())

    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for arm in ("grpo", "igpo"):
        metrics = next(runs.glob(f"*/arms/{arm}/seed_5/metrics.jsonl")).read_text().splitlines()
        assert [json.loads(m)["step"] for m in metrics] == list(range(1, 9)), arm  # resumed, no step twice
