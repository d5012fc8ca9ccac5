"""Experiment tracking (report_to): TensorBoard event files written and read back equal to metrics.jsonl for RL,
SFT and evaluation; W&B offline; unknown or missing trackers refused before anything is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from igpo_kit.errors import ConfigError
from igpo_kit.tracking import check_report_to


def _run(tmp_path, recipe, *bindings, env=None):
    args = [sys.executable, "-m", "igpo_kit.cli.main", "run", recipe, "--json", "--runs-dir", str(tmp_path / "runs")]
    for b in bindings:
        args += ["-b", b]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})
    assert r.returncode == 0, r.stderr[-3000:]
    return Path(json.loads(r.stdout)["run_dir"])


def _scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_unknown_or_missing_tracker_is_refused():
    with pytest.raises(ConfigError, match=r"unknown tracker 'tensorbord' \(choices: tensorboard, wandb, mlflow\)"):
        check_report_to(["tensorbord"])
    assert check_report_to(None) == [] and check_report_to([]) == []


def test_bad_report_to_fails_validation_before_anything_is_written(tmp_path):
    r = subprocess.run([sys.executable, "-m", "igpo_kit.cli.main", "run", "tiny/igpo.gin", "--runs-dir",
                        str(tmp_path), "-b", "entry.rl.report_to = ['tensorbord']"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2
    assert "entry.rl.report_to: unknown tracker 'tensorbord' (choices: tensorboard, wandb, mlflow)" in r.stderr
    assert not any(tmp_path.iterdir())


def test_rl_to_tensorboard_and_wandb_offline(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard package is not installed (pip install 'igpo-kit[tensorboard]')")
    pytest.importorskip("wandb", reason="the wandb package is not installed (pip install 'igpo-kit[wandb]')")
    run_dir = _run(tmp_path, "tiny/igpo.gin", "entry.rl.max_steps = 2", "entry.rl.inner_iters = 1",
                   "entry.rl.report_to = ['tensorboard', 'wandb']",
                   env={"WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    lines = _metrics(run_dir)
    tb = _scalars(run_dir / "tracking" / "tensorboard" / "rl")
    assert [s for s, _ in tb["reward"]] == [1, 2]
    assert [v for _, v in tb["reward"]] == pytest.approx([x["reward"] for x in lines])
    assert [v for _, v in tb["loss"]] == pytest.approx([x["loss"] for x in lines], rel=1e-5, abs=1e-7)
    assert "all_wrong_ratio_before" in tb and "lr" in tb
    offline = list((run_dir / "tracking" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline) == 1 and b"all_wrong_ratio_before" in offline[0].read_bytes()


def test_sft_and_eval_to_tensorboard(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard package is not installed (pip install 'igpo-kit[tensorboard]')")
    sft_dir = _run(tmp_path, "tiny/sft.gin", "entry.sft.max_steps = 3", "dataset.arithmetic.n = 16",
                   "entry.sft.report_to = ['tensorboard']")
    tb = _scalars(sft_dir / "tracking" / "tensorboard" / "sft")
    assert [s for s, _ in tb["loss"]] == [1, 2, 3]
    assert [v for _, v in tb["loss"]] == pytest.approx([x["loss"] for x in _metrics(sft_dir)], rel=1e-6)
    eval_dir = _run(tmp_path, "tiny/eval.gin", "gsm8k/dataset.gsm8k.limit = 2", "entry.evaluate.report_to = 'tensorboard'")
    tb = _scalars(eval_dir / "tracking" / "tensorboard" / "eval")
    [line] = _metrics(eval_dir)
    assert tb["gsm8k/pass@1"] == [(0, pytest.approx(line["pass@1"]))]
