"""Compare the arms of one experiment (GRPO vs IGPO from the same start): a summary table and per-step plots.

The shape of the paper's Fig. 1b (accuracy per step) and Fig. 3 (all-wrong-group ratio per step). Input records are
those of :mod:`igpo_kit.report.load` (``method`` = the arm, ``seed``, ``metrics`` = the RL ``metrics.jsonl`` lines),
optionally with ``eval`` (greedy test accuracy in [0, 1]) and ``seconds`` (wall time of the arm).

Accuracy is the policy's own: ``initial_correctness``, the fraction of correct rollouts *before* inpainted rows
replace any (for IGPO the logged ``accuracy``/``reward`` include the verified inpainted rows). The all-wrong ratio
is reported twice: before rescue (``all_wrong_ratio_before``, the policy's groups: a property of the model) and after
rescue (``all_wrong_ratio_after``, the groups the loss sees: only those carry no gradient signal).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from igpo_kit.report.tables import Row, Stat, Table, final_value, mean_stderr

__all__ = ["ARM_COLUMNS", "CURVES", "arm_plots", "arm_table", "smoothed", "to_rich_by_metric"]

# column -> (metric key in metrics.jsonl, "final": mean of the last steps | "mean": over all steps | "rescue": over the
# steps that triggered inpainting (triggered_groups > 0), None for an arm that never did)
ARM_COLUMNS: dict[str, tuple[str, str]] = {
    "acc final": ("initial_correctness", "final"),
    "acc mean": ("initial_correctness", "mean"),
    "all-wrong before": ("all_wrong_ratio_before", "mean"),
    "all-wrong after": ("all_wrong_ratio_after", "mean"),
    "all-wrong before final": ("all_wrong_ratio_before", "final"),
    "K/step": ("replaced_rows_K", "mean"),
    "inpaint acc": ("inpainted_correctness", "rescue"),
}
TIME, TEST = "time s", "test acc"
# plot file -> {curve name: metric key}
CURVES: dict[str, dict[str, str]] = {
    "accuracy.png": {"accuracy (policy rollouts)": "initial_correctness"},
    "all_wrong_ratio.png": {"all-wrong ratio before rescue": "all_wrong_ratio_before",
                            "all-wrong ratio after rescue": "all_wrong_ratio_after"},
}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _mean_of(metrics: list[dict], key: str) -> float | None:
    xs = [float(m[key]) for m in metrics if _number(m.get(key))]
    return sum(xs) / len(xs) if xs else None


def arm_table(records: Sequence[dict], last: int = 10, baseline: str | None = "grpo",
              start: dict | None = None) -> Table:
    """Methods (arms) x summary columns, mean +- stderr over seeds, deltas to ``baseline`` where it is an arm.

    Args:
        records: one per (arm, seed); see the module docstring.
        last: "final" columns are the mean of the last ``last`` logged steps.
        baseline: the arm the deltas are relative to (ignored when absent).
        start: optional ``{"method": name, "eval": accuracy}`` row for the starting model (e.g. the SFT model).
    """
    columns = ["steps", *ARM_COLUMNS, TIME, TEST]
    groups: dict[str, list[dict[str, float]]] = {}
    for rec in records:
        metrics = rec.get("metrics") or []
        vals: dict[str, float] = {}
        steps = [m["step"] for m in metrics if _number(m.get("step"))]
        if steps:
            vals["steps"] = float(max(steps))
        for col, (key, how) in ARM_COLUMNS.items():
            if how == "final":
                v = final_value(metrics, key, last)
            else:
                rows = [m for m in metrics if how == "mean" or (m.get("triggered_groups") or 0) > 0]
                v = _mean_of(rows, key)
            if v is not None:
                vals[col] = v
        if _number(rec.get("seconds")):
            vals[TIME] = float(rec["seconds"])
        if _number(rec.get("eval")):
            vals[TEST] = float(rec["eval"])
        groups.setdefault(rec["method"], []).append(vals)
    rows = []
    if start is not None and _number(start.get("eval")):
        rows.append(Row(method=start["method"], n=1, cells={c: None for c in columns}))
        rows[0].cells[TEST] = Stat(float(start["eval"]), None, 1)
    for method, vals in groups.items():
        row = Row(method=method, n=len(vals))
        for col in columns:
            xs = [v[col] for v in vals if col in v]
            row.cells[col] = Stat(*mean_stderr(xs), len(xs)) if xs else None
        rows.append(row)
    base = next((r for r in rows if r.method == baseline), None)
    if base is not None:
        for r in rows:
            if r is base or r.n == 0 or (start is not None and r.method == start.get("method")):
                continue
            for col in columns:
                st, bs = r.cells.get(col), base.cells.get(col)
                if col not in ("steps", TIME) and st is not None and bs is not None:
                    st.delta = st.mean - bs.mean
    seeds = max((r.n for r in rows), default=0)
    return Table(
        title=f"GRPO vs IGPO from the same start (mean ± stderr over {seeds} seed{'s' * (seeds != 1)})",
        columns=columns, rows=rows, baseline=baseline if base is not None else None, digits=2,
        note=(f"acc: the policy's own rollouts (before inpainting); all-wrong: ratio of groups with no correct "
              f"rollout, before / after inpainting rescue (mean over steps); final: mean of the last {last} steps; "
              "K/step: rows replaced per step; inpaint acc: correct fraction of inpainted rollouts; test acc: "
              "greedy, held-out problems" + (f"; (deltas to {baseline})" if base is not None else "")),
    )


def to_rich_by_metric(table: Table):
    """``table`` as a rich table with one row per column and one column per method (fits a narrow terminal)."""
    from rich.table import Table as RichTable

    from igpo_kit.report.tables import format_stat

    t = RichTable(title=table.title, caption=table.note or None)
    t.add_column("")
    for r in table.rows:
        t.add_column(f"{r.method} ({r.n} seed{'s' * (r.n != 1)})" if r.n > 1 else r.method, justify="right",
                     style="bold" if r.method == table.baseline else None)
    for col in table.columns:
        digits = 0 if col in ("steps", TIME) else table.digits
        t.add_row(col, *[format_stat(r.cells.get(col), digits, col != "steps") for r in table.rows])
    return t


def smoothed(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average: point ``i`` is the mean of ``values[max(0, i - window + 1) .. i]``."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _smoothed_records(records: Sequence[dict], curves: dict[str, str], window: int) -> list[dict]:
    out = []
    for rec in records:
        metrics = [m for m in rec.get("metrics") or [] if _number(m.get("step"))]
        rows = [{"step": m["step"]} for m in metrics]
        for name, key in curves.items():
            pts = [(i, float(m[key])) for i, m in enumerate(metrics) if _number(m.get(key))]
            for (i, _), v in zip(pts, smoothed([v for _, v in pts], window)):
                rows[i][name] = v
        out.append({**rec, "metrics": rows})
    return out


def arm_plots(records: Sequence[dict], out_dir: str | Path, window: int = 5, title: str = "") -> list[Path]:
    """Write ``accuracy.png`` and ``all_wrong_ratio.png`` (one line per arm, mean over seeds +- stderr band).

    Each point is the trailing mean over ``window`` rollout steps (a step sees only a few groups, so a single
    step's ratio is coarse). Returns the files written.
    """
    from igpo_kit.report.plots import training_curves

    files = []
    suffix = f"\n(trailing mean over {window} steps)" if window > 1 else ""
    for name, curves in CURVES.items():
        recs = _smoothed_records(records, curves, max(1, window))
        p = training_curves(recs, Path(out_dir) / name, metrics=tuple(curves), title=(title + suffix).strip())
        if p is not None:
            files.append(p)
    return files
