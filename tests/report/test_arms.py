"""Arm comparison (GRPO vs IGPO): the summary table over seeds, deltas to the baseline arm, smoothing, plots."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from igpo_kit.report.arms import arm_plots, arm_table, smoothed, to_rich_by_metric


def _metrics(acc: list[float], before: list[float], after: list[float], k: float) -> list[dict]:
    # IGPO-like records (k > 0) trigger inpainting at their first step only, with 1/4 of the inpainted rows correct
    return [{"step": i + 1, "initial_correctness": a, "all_wrong_ratio_before": b, "all_wrong_ratio_after": c,
             "replaced_rows_K": k, "triggered_groups": float(k > 0 and i == 0),
             "inpainted_correctness": 0.25 if k > 0 and i == 0 else 0.0}
            for i, (a, b, c) in enumerate(zip(acc, before, after))]


RECORDS = [
    {"method": "grpo", "seed": 0, "seconds": 10.0, "eval": 0.2,
     "metrics": _metrics([0.1, 0.3], [0.5, 0.5], [0.5, 0.5], 0)},
    {"method": "grpo", "seed": 1, "seconds": 12.0, "eval": 0.4,
     "metrics": _metrics([0.1, 0.1], [1.0, 0.0], [1.0, 0.0], 0)},
    {"method": "igpo", "seed": 0, "seconds": 15.0, "eval": 0.3,
     "metrics": _metrics([0.2, 0.2], [0.5, 0.5], [0.0, 0.5], 2)},
]


def test_table_means_over_seeds_and_deltas():
    t = arm_table(RECORDS, last=1, start={"method": "sft (start)", "eval": 0.25})
    assert [r.method for r in t.rows] == ["sft (start)", "grpo", "igpo"]
    grpo, igpo = t.row("grpo"), t.row("igpo")
    assert grpo.n == 2 and igpo.n == 1
    assert grpo.cells["acc mean"].mean == pytest.approx(0.15)  # (0.2 + 0.1) / 2
    assert grpo.cells["acc final"].mean == pytest.approx(0.2)  # last step: (0.3 + 0.1) / 2
    assert grpo.cells["acc final"].stderr == pytest.approx(0.1)
    assert igpo.cells["all-wrong after"].mean == pytest.approx(0.25)
    assert igpo.cells["all-wrong after"].delta == pytest.approx(0.25 - 0.5)
    assert igpo.cells["K/step"].mean == 2 and igpo.cells["time s"].delta is None
    assert igpo.cells["inpaint acc"].mean == 0.25 and grpo.cells["inpaint acc"] is None  # steps that inpainted
    assert igpo.cells["test acc"].delta == pytest.approx(0.3 - 0.3)
    assert t.row("sft (start)").cells["test acc"].mean == 0.25 and t.row("sft (start)").cells["acc mean"] is None
    buf = io.StringIO()
    Console(file=buf, width=80).print(to_rich_by_metric(t))  # one column per method: fits a narrow terminal
    text = buf.getvalue()
    assert "all-wrong after" in text and "igpo" in text and max(len(line) for line in text.splitlines()) <= 80


def test_smoothed_is_a_trailing_mean():
    assert smoothed([1, 0, 0, 1], 2) == [1.0, 0.5, 0.0, 0.5]
    assert smoothed([1, 2, 3], 1) == [1, 2, 3]
    assert smoothed([], 3) == []


def test_plots_written(tmp_path):
    files = arm_plots(RECORDS, tmp_path, window=2, title="t")
    assert [f.name for f in files] == ["accuracy.png", "all_wrong_ratio.png"]
    assert all(f.read_bytes()[:4] == b"\x89PNG" for f in files)
