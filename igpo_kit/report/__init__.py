"""Reports over runs and sweeps: load run directories -> plain records -> tables -> files (Markdown, CSV, PNG).

Library code only (no Typer): ``igpo-kit report`` lives in :mod:`igpo_kit.cli.experiments`.

    from igpo_kit.report import build_report
    rep = build_report("runs/sweeps/hint_ratio", baseline="no_hints")
    rep.files   # report.md, eval_table.csv, training_table.csv, training_curves.png, vs_<axis>.png
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from igpo_kit.report.load import load, load_run, load_sweep, read_metrics
from igpo_kit.report.tables import (Table, eval_columns, eval_table, final_value, mean_stderr, speed_table, to_csv,
                                    to_markdown, to_rich, training_table)


@dataclass
class Report:
    records: list[dict]
    meta: dict[str, Any]
    tables: dict[str, Table] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    out_dir: Path | None = None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "axis"


def _axis_values(records: list[dict], metric: str | None, last: int) -> dict[str, Any]:
    """Functions record -> y for metric-vs-axis plots: eval benchmarks (+ Average), else final training metrics."""
    evals = [r for r in records if r.get("summary")]
    if evals:
        def getter(t, m):
            def fn(r):
                v = ((r.get("summary") or {}).get(t) or {}).get(m)
                return 100.0 * v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
            return fn

        return {f"{t} ({m})": getter(t, m) for t, m in eval_columns(evals, metric)}
    from igpo_kit.report.tables import TRAINING_METRICS

    return {k: (lambda k: lambda r: final_value(r.get("metrics") or [], k, last))(k)
            for k in TRAINING_METRICS[:4]}


def build_report(path: str | Path, out_dir: str | Path | None = None, baseline: str | None = None,
                 metric: str | None = None, last: int = 10, plots: bool = True, write: bool = True) -> Report:
    """Load ``path`` (sweep dir, run dir or a folder of runs), build the tables and write them under ``out_dir``
    (default ``<path>/report``): ``report.md``, ``eval_table.csv``, ``training_table.csv``,
    ``training_curves.png`` and ``vs_<axis>.png`` per numeric axis.

    ``baseline``: a method or arm to compute deltas against (default: the sweep spec's ``baseline``; an explicit
    name that matches nothing is an error). ``metric``: report this metric (e.g. ``pass@5``) where present.
    ``last``: training metrics are the mean of the last ``last`` steps.
    """
    from igpo_kit.report import plots as P

    records, meta = load(path)
    strict = baseline is not None
    baseline = baseline if baseline is not None else meta.get("baseline")
    rep = Report(records=records, meta=meta)
    ev = eval_table(records, baseline=baseline, metric=metric, strict_baseline=strict)
    tr = training_table(records, baseline=baseline, last=last, strict_baseline=strict)
    if ev is not None:
        rep.tables["eval"] = ev
    if tr is not None:
        rep.tables["training"] = tr
    sp = speed_table(records, baseline=baseline, strict_baseline=strict)
    if sp is not None:
        rep.tables["speed"] = sp
    if not write:
        return rep
    out = Path(out_dir) if out_dir is not None else Path(path) / "report"
    out.mkdir(parents=True, exist_ok=True)
    rep.out_dir = out
    md = [f"# Report: {meta.get('name')}", "", f"Source: `{meta.get('dir')}` ({len(records)} runs)", ""]
    if meta.get("missing"):
        md += [f"Cells without a run directory yet: {', '.join(meta['missing'])}", ""]
    not_done = [r["name"] for r in records if r.get("status") != "done"]
    if not_done:
        md += [f"Runs not finished (included with what they logged): {', '.join(not_done)}", ""]
    for key, table in rep.tables.items():
        md.append(to_markdown(table))
        csv_path = out / f"{key}_table.csv"
        csv_path.write_text(to_csv(table))
        rep.files.append(csv_path)
    if plots:
        p = P.training_curves(records, out / "training_curves.png", title=str(meta.get("name") or ""))
        if p:
            rep.files.append(p)
            md += ["![training curves](training_curves.png)", ""]
        short = meta.get("axes") or {}
        fns = _axis_values(records, metric, last)
        for axis in P.numeric_axes(records):
            name = f"vs_{_safe(short.get(axis, axis))}.png"
            p = P.metric_vs_axis(records, axis, fns, out / name, short=short, title=str(meta.get("name") or ""))
            if p:
                rep.files.append(p)
                md += [f"![{short.get(axis, axis)}]({name})", ""]
    if not rep.tables:
        md += ["No metrics found (no metrics.jsonl with steps, no summary.json).", ""]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md))
    rep.files.insert(0, md_path)
    return rep


__all__ = ["Report", "Table", "build_report", "eval_table", "load", "load_run", "load_sweep", "mean_stderr",
           "read_metrics", "to_csv", "to_markdown", "to_rich", "training_table"]
