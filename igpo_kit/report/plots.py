"""PNG plots (matplotlib, Agg backend): training curves with stderr bands over seeds, and metric vs swept value.

* :func:`training_curves` -- one panel per metric (accuracy, all-wrong ratio before / after inpainting, ...),
  one line per method: the mean over seeds at each step, shaded +- one standard error (paper Fig. 3, 4, 5a, 10).
* :func:`metric_vs_axis` -- for a numeric axis (tau, rho, temperature, ...): one panel per metric, x the axis
  value, one line per method (the other axis values), error bars +- one stderr over seeds (Fig. 9, App. F.1).
  Methods without that axis (e.g. a GRPO reference arm) are drawn as dashed horizontal lines.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

from igpo_kit.report.grouping import is_seed_key, method_label
from igpo_kit.report.tables import mean_stderr

CURVE_METRICS = ("accuracy", "all_wrong_ratio_before", "all_wrong_ratio_after")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def curves(records: list[dict], metric: str, x: str = "step") -> dict[str, tuple[list, list, list]]:
    """``{method: (xs, means, stderrs)}`` of ``metric`` over ``x`` (mean over the method's runs at each x)."""
    by_method: dict[str, dict[float, list[float]]] = {}
    for r in records:
        pts = by_method.setdefault(r["method"], {})
        for m in r.get("metrics") or []:
            if _finite(m.get(x)) and _finite(m.get(metric)):
                pts.setdefault(m[x], []).append(float(m[metric]))
    out = {}
    for method, pts in by_method.items():
        if not pts:
            continue
        xs = sorted(pts)
        stats = [mean_stderr(pts[s]) for s in xs]
        out[method] = (xs, [s[0] for s in stats], [s[1] or 0.0 for s in stats])
    return out


def training_curves(records: list[dict], path: str | Path, metrics: Sequence[str] = CURVE_METRICS,
                    title: str = "") -> Path | None:
    """Training curves per method with stderr bands; None when no run logged these metrics."""
    panels = [(m, curves(records, m)) for m in metrics]
    panels = [(m, c) for m, c in panels if c]
    if not panels:
        return None
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, (metric, cs) in zip(axes[0], panels):
        for method, (xs, mean, se) in cs.items():
            line, = ax.plot(xs, mean, label=method, linewidth=1.5)
            lo = [m - s for m, s in zip(mean, se)]
            hi = [m + s for m, s in zip(mean, se)]
            ax.fill_between(xs, lo, hi, alpha=0.2, color=line.get_color(), linewidth=0)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric)
        ax.set_title(metric.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="best")
    return _save(fig, path, title)



def _save(fig, path, title: str | None) -> Path:
    """Title, lay out, write (parents created) and close ``fig``; returns the path."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    _plt().close(fig)
    return path

def numeric_axes(records: list[dict]) -> list[str]:
    """Non-seed axes whose values are all numbers, with at least two distinct values."""
    keys: dict[str, set] = {}
    bad: set[str] = set()
    for r in records:
        for k, v in (r.get("values") or {}).items():
            if is_seed_key(k):
                continue
            if _finite(v):
                keys.setdefault(k, set()).add(float(v))
            else:
                bad.add(k)
    return [k for k, vs in keys.items() if k not in bad and len(vs) >= 2]


def metric_vs_axis(records: list[dict], axis: str, values: dict[str, Callable[[dict], float | None]],
                   path: str | Path, short: dict[str, str] | None = None, title: str = "") -> Path | None:
    """Each metric (``values``: name -> function of a record) against the numeric ``axis``, one line per series.

    A series is the record's arm plus its other non-seed axis values; points are means over seeds +- stderr.
    """
    short = short or {}
    panels = []
    for name, fn in values.items():
        series: dict[str, dict[float, list[float]]] = {}
        flat: dict[str, list[float]] = {}
        for r in records:
            y = fn(r)
            if not _finite(y):
                continue
            keys = {k: v for k, v in (r.get("keys") or {}).items() if k != axis}
            label = method_label(r.get("arm"), keys, short)
            x = (r.get("values") or {}).get(axis)
            if _finite(x):
                series.setdefault(label, {}).setdefault(float(x), []).append(float(y))
            else:
                flat.setdefault(label, []).append(float(y))
        if series:
            panels.append((name, series, flat))
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, (name, series, flat) in zip(axes[0], panels):
        for label, pts in series.items():
            xs = sorted(pts)
            stats = [mean_stderr(pts[x]) for x in xs]
            ax.errorbar(xs, [s[0] for s in stats], yerr=[s[1] or 0.0 for s in stats], marker="o", capsize=3,
                        label=label, linewidth=1.5)
        for label, ys in flat.items():
            ax.axhline(mean_stderr(ys)[0], linestyle="--", linewidth=1, color="gray", label=label)
        ax.set_xlabel(short.get(axis, axis))
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(alpha=0.3)
    handles, labels = axes[0][-1].get_legend_handles_labels()
    if labels != ["base"]:
        axes[0][-1].legend(fontsize=8, loc="best")
    return _save(fig, path, title)


__all__ = ["CURVE_METRICS", "curves", "metric_vs_axis", "numeric_axes", "training_curves"]
