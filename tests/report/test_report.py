"""Reports on synthetic run directories: Table 1 layout (mean ± stderr over seeds, deltas), training tables,
Markdown / CSV / PNG files, baselines, folders of plain runs, and the ``igpo-kit report`` command."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from igpo_kit.cli.main import app
from igpo_kit.errors import ConfigError
from igpo_kit.report import build_report, eval_table, load, training_table
from igpo_kit.report.tables import mean_stderr, primary_metric, to_csv, to_markdown

runner = CliRunner()

# method -> benchmark -> per-seed scores (fractions)
EVAL = {
    "igpo": {"gsm8k": [0.80, 0.82, 0.84], "math500": [0.40, 0.42, 0.44], "amc": [0.15, 0.20, 0.25]},
    "grpo": {"gsm8k": [0.78, 0.78, 0.78], "math500": [0.39, 0.40, 0.41], "amc": [0.15, 0.15, 0.15]},
}


def make_run(run_dir: Path, seed, metrics=None, summary=None, done=True, job="rl"):
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"job": job, "seed": seed, "status": "done" if done else "running"}))
    if done:
        (run_dir / "DONE").write_text("")
    if metrics is not None:
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    if summary is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary))


def rl_metrics(acc0: float, slope: float, steps: int = 5):
    return [{"step": s, "reward": acc0 + slope * s, "accuracy": acc0 + slope * s,
             "all_wrong_ratio_before": 0.5 - slope * s, "all_wrong_ratio_after": 0.3 - slope * s}
            for s in range(1, steps + 1)]


def eval_summary(scores: dict[str, float]) -> dict:
    out = {}
    for task, v in scores.items():
        if task == "amc":
            out[task] = {"avg@16": v, "pass@1": v, "pass@16": min(1.0, 2 * v), "problems": 40, "task": task}
        else:
            out[task] = {"avg@1": v, "pass@1": v, "problems": 100, "task": task}
    return out


def make_sweep(root: Path, cells: list[dict], name="demo", baseline=None, axes=None) -> Path:
    """cells: {"id", "arm", "keys", "values", "method", "metrics", "summary"}; writes runs + manifest."""
    manifest_cells = []
    for c in cells:
        rel = f"cells/{c['id']}/abc123"
        seed = c["values"].get("SEED")
        make_run(root / rel, seed, metrics=c.get("metrics"), summary=c.get("summary"))
        manifest_cells.append({"id": c["id"], "arm": c.get("arm"), "keys": c["keys"], "values": c["values"],
                               "method": c["method"], "label": c["method"], "run_dir": rel, "status": "done"})
    manifest = {"schema": 1, "kind": "sweep", "name": name, "spec": {"name": name, "baseline": baseline, "arms": []},
                "axes": axes or {}, "cells": manifest_cells}
    (root / "sweep_manifest.json").write_text(json.dumps(manifest))
    return root


def arms_sweep(root: Path, baseline="grpo") -> Path:
    cells = []
    for arm, slope in (("igpo", 0.05), ("grpo", 0.01)):
        for i, seed in enumerate((0, 1, 2)):
            cells.append({"id": f"{arm}-{seed}", "arm": arm, "keys": {"SEED": str(seed)}, "values": {"SEED": seed},
                          "method": arm, "metrics": rl_metrics(0.1 * seed, slope),
                          "summary": eval_summary({t: v[i] for t, v in EVAL[arm].items()})})
    return make_sweep(root, cells, baseline=baseline, axes={"SEED": "SEED"})


def test_mean_stderr_and_primary_metric():
    m, se = mean_stderr([80.0, 82.0, 84.0])
    assert m == pytest.approx(82.0) and se == pytest.approx(2 / math.sqrt(3))
    assert mean_stderr([5.0]) == (5.0, None)
    assert primary_metric({"avg@1": 0.5, "pass@1": 0.5}) == "pass@1"
    assert primary_metric({"avg@16": 0.2, "pass@1": 0.2, "pass@16": 0.5}) == "avg@16"
    assert primary_metric({"avg@5": 0.2, "pass@5": 0.5}, metric="pass@5") == "pass@5"


def test_table1_layout_with_deltas(tmp_path):
    records, meta = load(arms_sweep(tmp_path / "sw"))
    assert meta["kind"] == "sweep" and meta["baseline"] == "grpo" and len(records) == 6
    assert {r["seed"] for r in records} == {0, 1, 2}
    t = eval_table(records, baseline="grpo")
    assert t.columns == ["gsm8k (pass@1)", "math500 (pass@1)", "amc (avg@16)", "Average"]
    igpo, grpo = t.row("igpo"), t.row("grpo")
    assert igpo.n == 3 and grpo.n == 3
    g = igpo.cells["gsm8k (pass@1)"]
    assert g.mean == pytest.approx(82.0) and g.stderr == pytest.approx(2 / math.sqrt(3)) and g.delta == \
        pytest.approx(4.0)
    assert grpo.cells["gsm8k (pass@1)"].stderr == pytest.approx(0.0) and grpo.cells["amc (avg@16)"].delta == 0
    # Average: per run over benchmarks, then over seeds
    per_seed = [(EVAL["igpo"]["gsm8k"][i] + EVAL["igpo"]["math500"][i] + EVAL["igpo"]["amc"][i]) / 3 * 100
                for i in range(3)]
    assert igpo.cells["Average"].mean == pytest.approx(sum(per_seed) / 3)
    assert igpo.cells["Average"].stderr == pytest.approx(mean_stderr(per_seed)[1])
    md = to_markdown(t)
    assert "| method | seeds | gsm8k (pass@1) | math500 (pass@1) | amc (avg@16) | Average |" in md
    assert "| igpo | 3 | 82.0 ± 1.2 (+4.0) |" in md and "| **grpo** | 3 | 78.0 ± 0.0 (+0.0) |" in md
    rows = list(csv.DictReader(io.StringIO(to_csv(t))))
    assert rows[0]["method"] == "igpo" and float(rows[0]["gsm8k (pass@1)"]) == pytest.approx(82.0)
    assert float(rows[0]["gsm8k (pass@1) delta"]) == pytest.approx(4.0)
    assert float(rows[0]["gsm8k (pass@1) stderr"]) == pytest.approx(1.154701, abs=1e-5)
    # without a baseline: no deltas
    assert eval_table(records).row("igpo").cells["gsm8k (pass@1)"].delta is None
    # a chosen metric where present (AMC pass@16), the primary one elsewhere
    t16 = eval_table(records, metric="pass@16")
    assert "amc (pass@16)" in t16.columns and "gsm8k (pass@1)" in t16.columns


def test_training_table_and_files(tmp_path):
    sw = arms_sweep(tmp_path / "sw")
    records, _ = load(sw)
    t = training_table(records, baseline="grpo", last=2)
    assert t.columns[:5] == ["steps", "reward", "accuracy", "all_wrong_ratio_before", "all_wrong_ratio_after"]
    acc = t.row("igpo").cells["accuracy"]
    # last 2 steps (4, 5) of acc0 + 0.05 s, acc0 = 0, 0.1, 0.2 -> 0.225 + 0.1
    assert acc.mean == pytest.approx(0.325) and acc.delta == pytest.approx(0.325 - (0.1 + 0.045))
    rep = build_report(sw, baseline="grpo", last=2)
    names = {f.name for f in rep.files}
    assert {"report.md", "eval_table.csv", "training_table.csv", "training_curves.png"} <= names
    assert rep.out_dir == sw / "report"
    png = (sw / "report" / "training_curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    md = (sw / "report" / "report.md").read_text()
    assert "### Evaluation" in md and "### Training" in md and "all-wrong before" in md
    assert "![training curves](training_curves.png)" in md


def test_numeric_axis_plot_and_arm_baseline(tmp_path):
    # App. J layout: arm "mixed" over RHO, arm "grpo" without it; SEED averaged
    cells = []
    for seed in (0, 1):
        for rho in (0.0, 0.25, 0.5):
            cells.append({"id": f"mixed-{rho}-{seed}", "arm": "mixed", "keys": {"RHO": str(rho), "SEED": str(seed)},
                          "values": {"RHO": rho, "SEED": seed}, "method": f"mixed RHO={rho}",
                          "metrics": rl_metrics(0.5 - rho, 0.0),
                          "summary": eval_summary({"gsm8k": 0.8 - rho / 2 + 0.01 * seed})})
        cells.append({"id": f"grpo-{seed}", "arm": "grpo", "keys": {"SEED": str(seed)}, "values": {"SEED": seed},
                      "method": "grpo", "metrics": rl_metrics(0.2, 0.0),
                      "summary": eval_summary({"gsm8k": 0.7 + 0.01 * seed})})
    sw = make_sweep(tmp_path / "noise", cells, baseline="grpo", axes={"RHO": "RHO", "SEED": "SEED"})
    rep = build_report(sw)
    t = rep.tables["eval"]
    assert t.columns == ["gsm8k (pass@1)"] and [r.method for r in t.rows][:3] == ["mixed RHO=0.0", "mixed RHO=0.25",
                                                                                 "mixed RHO=0.5"]
    assert t.row("mixed RHO=0.0").cells["gsm8k (pass@1)"].delta == pytest.approx(10.0)
    assert t.row("mixed RHO=0.5").cells["gsm8k (pass@1)"].delta == pytest.approx(-15.0)
    assert (sw / "report" / "vs_RHO.png").exists() and not (sw / "report" / "vs_SEED.png").exists()
    # an arm name as baseline when that arm is crossed with the same axis: compare like with like
    records, _ = load(sw)
    for r in records:
        if r["arm"] == "grpo":
            rho = "0.0" if r["seed"] == 0 else "0.5"
            r["keys"], r["method"] = {"RHO": rho, "SEED": r["keys"]["SEED"]}, f"grpo RHO={rho}"
    t2 = eval_table(records, baseline="grpo")
    assert t2.row("mixed RHO=0.0").cells["gsm8k (pass@1)"].delta == pytest.approx(80.5 - 70.0)
    assert t2.row("mixed RHO=0.5").cells["gsm8k (pass@1)"].delta == pytest.approx(55.5 - 71.0)
    assert t2.row("mixed RHO=0.25").cells["gsm8k (pass@1)"].delta is None  # no grpo cell with RHO=0.25


def test_unknown_baseline_errors(tmp_path):
    sw = arms_sweep(tmp_path / "sw")
    with pytest.raises(ConfigError, match="did you mean grpo"):
        build_report(sw, baseline="grp", write=False)
    r = runner.invoke(app, ["report", str(sw), "--baseline", "nope"])
    assert r.exit_code == 2 and "nope" in r.stderr
    # a baseline recorded in the spec that no run has yet is not an error: no deltas
    sw2 = arms_sweep(tmp_path / "sw2", baseline="not_run_yet")
    assert build_report(sw2, write=False).tables["eval"].baseline is None


def test_plain_run_folders_and_single_run(tmp_path):
    runs = tmp_path / "runs"
    for name, accs in (("igpo", [0.3, 0.5]), ("grpo", [0.2, 0.2])):
        for i, a in enumerate(accs):
            make_run(runs / name / f"rid{i}", i, metrics=rl_metrics(a, 0.0, steps=3))
    # a torn last line (killed run) is skipped
    with open(runs / "igpo" / "rid0" / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "accur')
    make_run(runs / "igpo" / "rid0" / "checkpoint-3", 0, metrics=rl_metrics(9.0, 0.0))  # not a run of its own
    records, meta = load(runs)
    assert meta["kind"] == "runs" and len(records) == 4
    t = training_table(records, baseline="grpo")
    assert t.row("igpo").n == 2 and t.row("igpo").cells["accuracy"].mean == pytest.approx(0.4)
    assert t.row("igpo").cells["accuracy"].delta == pytest.approx(0.2)
    single, meta = load(runs / "grpo" / "rid1")
    assert meta["kind"] == "run" and len(single) == 1 and single[0]["method"] == "grpo"
    with pytest.raises(ConfigError, match="no runs found"):
        load(_empty(tmp_path))
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "nope")


def _empty(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_report_cli(tmp_path):
    sw = arms_sweep(tmp_path / "sw")
    out = tmp_path / "out"
    r = runner.invoke(app, ["report", str(sw), "--out", str(out), "--json", "--no-plots"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["eval"]["baseline"] == "grpo" and data["eval"]["columns"][-1] == "Average"
    assert {Path(f).name for f in data["files"]} == {"report.md", "eval_table.csv", "training_table.csv"}
    r = runner.invoke(app, ["report", str(sw), "--out", str(out), "--baseline", "igpo"])
    assert r.exit_code == 0 and "(-4.0)" in r.stdout and "Evaluation" in r.stdout
    assert (out / "training_curves.png").exists()


def test_speed_table_next_to_accuracy(tmp_path):
    """A sampler comparison (e.g. ablations/samplers.toml): accuracy and tokens/s in one report, speed-up vs the
    baseline sampler."""
    cells = []
    for arm, tps in (("exact", [10.0, 12.0]), ("dual_cache", [40.0, 36.0])):
        for seed, v in zip((0, 1), tps):
            summary = {"gsm8k": {"avg@1": 0.5, "pass@1": 0.5, "problems": 100, "task": "gsm8k", "tokens_per_s": v}}
            cells.append({"id": f"{arm}-{seed}", "arm": arm, "keys": {"SEED": str(seed)}, "values": {"SEED": seed},
                          "method": arm, "summary": summary})
    sw = make_sweep(tmp_path / "sw", cells, baseline="exact", axes={"SEED": "SEED"})
    rep = build_report(sw, plots=False)
    t = rep.tables["speed"]
    assert t.columns == ["gsm8k tokens/s", "speed-up"]
    assert t.row("dual_cache").cells["gsm8k tokens/s"].mean == pytest.approx(38.0)
    assert t.row("dual_cache").cells["gsm8k tokens/s"].delta == pytest.approx(27.0)
    assert t.row("dual_cache").cells["speed-up"].mean == pytest.approx(38.0 / 11.0)
    assert "eval" in rep.tables and (sw / "report" / "speed_table.csv").is_file()
    assert "Generation speed" in (sw / "report" / "report.md").read_text()
    assert "speed" not in build_report(arms_sweep(tmp_path / "plain"), plots=False).tables  # no tokens/s: no table
