"""Paper-style tables from run records: methods x columns, mean +- stderr over seeds, deltas to a baseline.

* :func:`eval_table` -- Table 1 layout: benchmarks (``summary.json`` of evaluation runs) x methods, in percent,
  with an ``Average`` column (the mean over benchmarks per run, then over seeds) and deltas in percentage points
  relative to the baseline method.
* :func:`training_table` -- RL runs: the final value of training metrics (mean of the last ``last`` logged steps
  of ``metrics.jsonl``): reward, accuracy, all-wrong ratio before / after inpainting, ...

Both return a :class:`Table`; :func:`to_markdown`, :func:`to_csv` and :func:`to_rich` render it.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from igpo_kit.errors import ConfigError
from igpo_kit.report.grouping import is_seed_key

TRAINING_METRICS = ("reward", "accuracy", "all_wrong_ratio_before", "all_wrong_ratio_after", "rescued_fraction")
DISPLAY = {"all_wrong_ratio_before": "all-wrong before", "all_wrong_ratio_after": "all-wrong after",
           "rescued_fraction": "rescued"}


@dataclass
class Stat:
    mean: float
    stderr: float | None
    n: int
    delta: float | None = None


@dataclass
class Row:
    method: str
    n: int
    cells: dict[str, Stat | None] = field(default_factory=dict)


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[Row]
    baseline: str | None = None
    digits: int = 1
    note: str = ""

    def row(self, method: str) -> Row:
        for r in self.rows:
            if r.method == method:
                return r
        raise KeyError(method)


def mean_stderr(xs: Sequence[float]) -> tuple[float, float | None]:
    """Mean and standard error (sample std / sqrt(n)); stderr is None for a single value."""
    xs = [float(x) for x in xs]
    n = len(xs)
    m = sum(xs) / n
    if n < 2:
        return m, None
    var = sum((x - m) ** 2 for x in xs) / (n - 1)
    return m, math.sqrt(var / n)


def methods_in_order(records: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["method"] for r in records))


def resolve_baseline(records: list[dict], baseline: str | None, strict: bool = True) -> dict[str, str] | None:
    """Map each method to the method it is compared with, or None without a baseline.

    ``baseline`` is a method label, or an arm name: each method then compares with the method of that arm that
    has the same other axis values, or with the arm's only method.
    """
    if baseline is None:
        return None
    methods = methods_in_order(records)
    if baseline in methods:
        return {m: baseline for m in methods}
    arm_methods = [r for r in records if r.get("arm") == baseline]
    if arm_methods:
        def rest(r):
            return tuple((k, v) for k, v in r.get("keys", {}).items() if not is_seed_key(k))

        by_rest = {rest(r): r["method"] for r in arm_methods}
        only = list(dict.fromkeys(r["method"] for r in arm_methods))
        out = {}
        for r in records:
            target = by_rest.get(rest(r)) or (only[0] if len(only) == 1 else None)
            if target is not None:
                out[r["method"]] = target
        return out
    if strict:
        arms = list(dict.fromkeys(r["arm"] for r in records if r.get("arm")))
        close = difflib.get_close_matches(baseline, methods + arms, n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}?" if close else f"methods: {', '.join(methods)}"
        raise ConfigError(f"baseline {baseline!r} is not a method or arm of these runs ({hint})")
    return None


def _table(title: str, columns: list[str], per_record: list[tuple[dict, dict[str, float]]], baseline_map,
           baseline: str | None, digits: int, note: str = "") -> Table:
    groups: dict[str, list[dict[str, float]]] = {}
    for rec, vals in per_record:
        groups.setdefault(rec["method"], []).append(vals)
    rows = []
    for method, vals in groups.items():
        row = Row(method=method, n=len(vals))
        for col in columns:
            xs = [v[col] for v in vals if v.get(col) is not None and not math.isnan(v[col])]
            if xs:
                m, se = mean_stderr(xs)
                row.cells[col] = Stat(m, se, len(xs))
            else:
                row.cells[col] = None
        rows.append(row)
    if baseline_map:
        by_name = {r.method: r for r in rows}
        for r in rows:
            b = by_name.get(baseline_map.get(r.method, ""))
            if b is None:
                continue
            for col, st in r.cells.items():
                bs = b.cells.get(col)
                if st is not None and bs is not None:
                    st.delta = st.mean - bs.mean
    return Table(title=title, columns=columns, rows=rows, baseline=baseline, digits=digits, note=note)


def primary_metric(task_metrics: dict[str, Any], metric: str | None = None) -> str | None:
    """The metric a benchmark is reported with: ``metric`` if given and present, else avg@n for n > 1 samples
    (AMC: avg@16) and pass@1 for one sample (GSM8K, MATH500, Minerva)."""
    if metric and metric in task_metrics:
        return metric
    avg = [k for k in task_metrics if re.fullmatch(r"avg@\d+", k)]
    if avg:
        n = int(avg[0].split("@")[1])
        if n == 1 and "pass@1" in task_metrics:
            return "pass@1"
        return avg[0]
    return "pass@1" if "pass@1" in task_metrics else None


def eval_columns(records: list[dict], metric: str | None = None) -> list[tuple[str, str]]:
    """(benchmark, metric) columns: each benchmark's primary metric; for a single benchmark (and no ``metric``)
    every pass@k / avg@k it has (App. F.1: pass@5 and avg@5)."""
    tasks: dict[str, str] = {}
    for r in records:
        for task, m in (r.get("summary") or {}).items():
            if isinstance(m, dict) and task not in tasks:
                pm = primary_metric(m, metric)
                if pm:
                    tasks[task] = pm
    if len(tasks) == 1 and metric is None:
        task = next(iter(tasks))
        ks = {k for r in records for k in ((r.get("summary") or {}).get(task) or {})
              if re.fullmatch(r"(avg|pass)@\d+", k)}
        if "pass@1" in ks:
            ks.discard("avg@1")  # the same number with one sample
        if len(ks) > 1:
            order = sorted(ks, key=lambda k: (int(k.split("@")[1]), k.startswith("pass")))
            return [(task, k) for k in order]
    return list(tasks.items())


def eval_table(records: list[dict], baseline: str | None = None, metric: str | None = None,
               strict_baseline: bool = True) -> Table | None:
    """Table 1 layout over the records with ``summary.json``: benchmarks x methods (percent), plus Average."""
    recs = [r for r in records if r.get("summary")]
    if not recs:
        return None
    pairs = eval_columns(recs, metric)
    columns = [f"{t} ({m})" for t, m in pairs]
    average = len({t for t, _ in pairs}) > 1
    per_record = []
    for r in recs:
        vals: dict[str, float] = {}
        for (task, m), col in zip(pairs, columns):
            v = (r["summary"].get(task) or {}).get(m)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                vals[col] = 100.0 * float(v)
        if average and all(c in vals for c in columns):
            vals["Average"] = sum(vals[c] for c in columns) / len(columns)
        per_record.append((r, vals))
    if average:
        columns.append("Average")
    bmap = resolve_baseline(recs, baseline, strict=strict_baseline)
    return _table("Evaluation (%, mean ± stderr over seeds)", columns, per_record, bmap,
                  baseline if bmap else None, digits=1,
                  note=f"deltas in percentage points relative to {baseline}" if bmap else "")


def speed_table(records: list[dict], baseline: str | None = None, strict_baseline: bool = True) -> Table | None:
    """Generation speed of evaluation runs: tokens/s per benchmark (``tokens_per_s`` of ``summary.json``) x methods,
    mean ± stderr over seeds; deltas in tokens/s and a ``speed-up`` column (mean over benchmarks of the ratio to
    the baseline's tokens/s) -- a sampler comparison in the same report as its accuracy."""
    recs = [r for r in records if any(isinstance(m, dict) and "tokens_per_s" in m
                                      for m in (r.get("summary") or {}).values())]
    if not recs:
        return None
    tasks = list(dict.fromkeys(t for r in recs for t, m in r["summary"].items()
                               if isinstance(m, dict) and "tokens_per_s" in m))
    columns = [f"{t} tokens/s" for t in tasks]
    per_record = [(r, {c: float(r["summary"][t]["tokens_per_s"]) for t, c in zip(tasks, columns)
                       if t in r["summary"] and "tokens_per_s" in r["summary"][t]}) for r in recs]
    bmap = resolve_baseline(recs, baseline, strict=strict_baseline)
    table = _table("Generation speed (tokens/s, mean ± stderr over seeds)", columns, per_record, bmap,
                   baseline if bmap else None, digits=1,
                   note=f"deltas in tokens/s relative to {baseline}; speed-up = tokens/s / {baseline}'s" if bmap else "")
    base_row = next((row for row in table.rows if row.method == baseline), None)
    if base_row is not None:
        table.columns.append("speed-up")
        for row in table.rows:
            ratios = [row.cells[c].mean / base_row.cells[c].mean for c in columns
                      if c in row.cells and c in base_row.cells and base_row.cells[c].mean > 0]
            if ratios:
                row.cells["speed-up"] = Stat(sum(ratios) / len(ratios), None, len(ratios))
    return table


def final_value(metrics: list[dict], key: str, last: int) -> float | None:
    xs = [float(m[key]) for m in metrics if isinstance(m.get(key), (int, float)) and not isinstance(m.get(key), bool)]
    if not xs:
        return None
    xs = xs[-max(1, last):]
    return sum(xs) / len(xs)


def training_table(records: list[dict], baseline: str | None = None, last: int = 10,
                   metrics: Sequence[str] = TRAINING_METRICS, strict_baseline: bool = True) -> Table | None:
    """Final training metrics of RL runs (mean of the last ``last`` steps), methods x metrics."""
    recs = [r for r in records if r.get("metrics") and any("step" in m for m in r["metrics"])]
    if not recs:
        return None
    columns = [k for k in metrics if any(final_value(r["metrics"], k, last) is not None for r in recs)]
    per_record = []
    for r in recs:
        vals = {}
        for k in columns:
            v = final_value(r["metrics"], k, last)
            if v is not None:
                vals[k] = v
        steps = [m.get("step") for m in r["metrics"] if isinstance(m.get("step"), int)]
        if steps:
            vals["steps"] = float(max(steps))
        per_record.append((r, vals))
    columns = ["steps"] + columns
    bmap = resolve_baseline(recs, baseline, strict=strict_baseline)
    return _table(f"Training (mean of the last {last} steps; mean ± stderr over seeds)", columns, per_record, bmap,
                  baseline if bmap else None, digits=3,
                  note=f"deltas relative to {baseline}" if bmap else "")


# ----------------------------------------------------------------------------------------------- rendering


def format_stat(st: Stat | None, digits: int, with_delta: bool = True) -> str:
    if st is None:
        return "–"
    s = f"{st.mean:.{digits}f}"
    if st.stderr is not None and with_delta:
        s += f" ± {st.stderr:.{digits}f}"
    if with_delta and st.delta is not None:
        s += f" ({st.delta:+.{digits}f})"
    return s


def _cell_digits(table: Table, col: str) -> int:
    return 0 if col == "steps" else table.digits


def to_markdown(table: Table) -> str:
    head = ["method", "seeds"] + [DISPLAY.get(c, c) for c in table.columns]
    lines = [f"### {table.title}", ""]
    if table.note:
        lines += [f"_{table.note}_", ""]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for r in table.rows:
        name = f"**{r.method}**" if r.method == table.baseline else r.method
        cells = [format_stat(r.cells.get(c), _cell_digits(table, c), c != "steps") for c in table.columns]
        lines.append("| " + " | ".join([name.replace("|", "\\|"), str(r.n)] + cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    head = ["method", "seeds"]
    for c in table.columns:
        head += [c, f"{c} stderr", f"{c} delta"]
    w.writerow(head)
    for r in table.rows:
        row: list[Any] = [r.method, r.n]
        for c in table.columns:
            st = r.cells.get(c)
            row += ["", "", ""] if st is None else [
                round(st.mean, 6), "" if st.stderr is None else round(st.stderr, 6),
                "" if st.delta is None else round(st.delta, 6)]
        w.writerow(row)
    return buf.getvalue()


def to_rich(table: Table):
    from rich.table import Table as RichTable

    t = RichTable(title=table.title, caption=table.note or None)
    t.add_column("method")
    t.add_column("seeds", justify="right")
    for c in table.columns:
        t.add_column(DISPLAY.get(c, c), justify="right", overflow="fold")
    for r in table.rows:
        cells = [format_stat(r.cells.get(c), _cell_digits(table, c), c != "steps") for c in table.columns]
        t.add_row(r.method, str(r.n), *cells, style="bold" if r.method == table.baseline else None)
    return t


__all__ = ["Row", "Stat", "TRAINING_METRICS", "Table", "eval_table", "final_value", "format_stat", "mean_stderr",
           "methods_in_order", "primary_metric", "resolve_baseline", "to_csv", "to_markdown", "to_rich",
           "training_table"]
