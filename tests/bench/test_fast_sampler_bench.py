"""bench/fast_sampler.py and bench/sampler_accuracy.py run end to end at toy size (CPU) and write their JSON."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def _run(args, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_speed_bench_runs(tmp_path):
    out = tmp_path / "speed.json"
    text = _run([str(ROOT / "bench" / "fast_sampler.py"), "--config", "tiny", "--repeats", "1", "--batch", "2",
                 "--out", str(out)], tmp_path)
    rows = {r["sampler"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"exact", "exact+thr", "dual_cache", "dual_cache+thr"} and "load average" in text
    assert rows["exact"]["speedup"] == 1.0 and rows["exact"]["same_as_exact"] == 1.0
    assert rows["dual_cache"]["nfe"] == rows["exact"]["nfe"] == 32  # the exact schedule


def test_accuracy_bench_runs_on_a_saved_model(tmp_path):
    from igpo_kit.models.tiny import save, tiny

    path = save(tiny(architecture="llada"), tmp_path / "model")
    out = tmp_path / "acc.json"
    _run([str(ROOT / "bench" / "sampler_accuracy.py"), "--model-path", str(path), "--n", "3", "--group-size", "2",
          "--out", str(out)], tmp_path)
    rows = json.loads(out.read_text())["rows"]
    assert {(r["tau"], r["sampler"]) for r in rows} == {(t, s) for t in (0.0, 1.2)
                                                       for s in ("exact", "exact+thr", "dual_cache", "dual_cache+thr")}
    for r in rows:
        lo, mean, hi = r["accuracy"][1], r["accuracy"][0], r["accuracy"][2]
        assert 0 <= lo <= mean <= hi <= 1 and 0 <= r["mean_length"] <= 64
        assert ("all_wrong" in r) == (r["tau"] == 1.2) and ("diff_accuracy" in r) == (r["sampler"] != "exact")


def test_bootstrap_interval():
    spec = importlib.util.spec_from_file_location("sampler_accuracy", ROOT / "bench" / "sampler_accuracy.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mean, lo, hi = mod.bootstrap_ci(torch.tensor([0.0, 1.0] * 200))
    assert mean == 0.5 and 0.43 < lo < 0.5 < hi < 0.57  # ~ +- 1.96 * 0.5 / sqrt(400) = 0.049
    assert mod.bootstrap_ci(torch.ones(10)) == (1.0, 1.0, 1.0)


def test_trunk_to_head_ratios_of_the_configs():
    """The FLOP ratios the configs' comments state: LLaDA-8B's trunk dominates, wide's LM head dominates."""
    spec = importlib.util.spec_from_file_location("fast_sampler", ROOT / "bench" / "fast_sampler.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ratio = {name: round(mod.trunk_to_head(cfg, 126464), 2) for name, cfg in mod.CONFIGS.items() if cfg["vocab"]}
    assert ratio == {"wide": 0.2, "wide_deep": 0.58, "llada8b": 13.47}
