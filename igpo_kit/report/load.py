"""Load run directories into plain records (lists and dicts, no pandas).

A record is one run::

    {"name": "igpo-1a2b3c4d", "run_dir": "...", "method": "igpo tau=0.2", "arm": "igpo", "seed": 0,
     "keys": {"SEED": "0", ...}, "values": {"SEED": 0, ...}, "job": "rl", "status": "done",
     "metrics": [{"step": 1, "accuracy": ..., ...}, ...],          # metrics.jsonl (RL: one line per step)
     "summary": {"gsm8k": {"pass@1": ..., "avg@1": ...}, ...}}     # summary.json (evaluation runs) or None

``load(path)`` accepts a sweep directory (``sweep_manifest.json``: methods are arms plus non-seed axis values),
a run directory (``run.json``) or any folder holding run directories (methods are run names, i.e. the folder
above each run-id).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from igpo_kit.errors import ConfigError
from igpo_kit.report.grouping import is_seed_key

MANIFEST = "sweep_manifest.json"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def read_metrics(path: Path) -> list[dict]:
    """``metrics.jsonl`` lines (a torn last line of a killed run is skipped)."""
    out = []
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            out.append(row)
    return out


def _status(run_dir: Path, info: dict | None) -> str:
    if (run_dir / "DONE").exists():
        return "done"
    if (run_dir / "FAILED").exists():
        return "failed"
    return (info or {}).get("status") or ("incomplete" if run_dir.exists() else "missing")


def load_run(run_dir: str | Path, **fields: Any) -> dict[str, Any]:
    run_dir = Path(run_dir)
    info = _read_json(run_dir / "run.json") or {}
    summary = _read_json(run_dir / "summary.json")
    rec = {
        "name": run_dir.name, "run_dir": str(run_dir), "method": run_dir.parent.name or run_dir.name, "arm": None,
        "seed": info.get("seed"), "keys": {}, "values": {}, "job": info.get("job"), "status": _status(run_dir, info),
        "metrics": read_metrics(run_dir / "metrics.jsonl"),
        "summary": summary if isinstance(summary, dict) else None,
    }
    rec.update(fields)
    return rec


def load_sweep(sweep_dir: str | Path) -> tuple[list[dict], dict[str, Any]]:
    sweep_dir = Path(sweep_dir)
    manifest = _read_json(sweep_dir / MANIFEST)
    if not isinstance(manifest, dict) or "cells" not in manifest:
        raise ConfigError(f"{sweep_dir / MANIFEST}: not a readable sweep manifest")
    records, missing = [], []
    for cell in manifest["cells"]:
        run_dir = Path(cell["run_dir"])
        if not run_dir.is_absolute():
            run_dir = sweep_dir / run_dir
        if not (run_dir / "run.json").exists() and not (run_dir / "metrics.jsonl").exists():
            missing.append(cell["id"])
            continue
        seeds = [cell.get("values", {}).get(k) for k in cell.get("keys", {}) if is_seed_key(k)]
        rec = load_run(run_dir, name=cell["id"], method=cell.get("method") or cell.get("arm") or cell["id"],
                       arm=cell.get("arm"), keys=dict(cell.get("keys", {})), values=dict(cell.get("values", {})),
                       label=cell.get("label"))
        if seeds:
            rec["seed"] = seeds[0] if len(seeds) == 1 else tuple(seeds)
        records.append(rec)
    spec = manifest.get("spec") or {}
    meta = {"kind": "sweep", "name": manifest.get("name") or sweep_dir.name, "dir": str(sweep_dir),
            "baseline": spec.get("baseline"), "axes": manifest.get("axes") or {}, "missing": missing,
            "arms": [a.get("name") for a in spec.get("arms", [])]}
    return records, meta


def find_runs(root: Path) -> list[Path]:
    """Run directories under ``root`` (folders with ``run.json``; checkpoints and models are not descended)."""
    out = []
    for p in sorted(root.rglob("run.json")):
        d = p.parent
        if any(part.startswith(("checkpoint", ".")) for part in d.relative_to(root).parts):
            continue
        out.append(d)
    return out


def load(path: str | Path) -> tuple[list[dict], dict[str, Any]]:
    """Records and metadata (``kind``, ``name``, ``baseline``, ``axes``, ``missing``) of a sweep/run/runs dir."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} does not exist")
    if (path / MANIFEST).is_file():
        return load_sweep(path)
    if (path / "run.json").is_file():
        return [load_run(path)], {"kind": "run", "name": path.parent.name, "dir": str(path), "baseline": None,
                                   "axes": {}, "missing": [], "arms": []}
    records, sweeps = [], sorted(p.parent for p in path.rglob(MANIFEST))
    in_sweeps = set()
    for s in sweeps:
        recs, _ = load_sweep(s)
        for r in recs:
            r["method"] = f"{s.name}/{r['method']}" if len(sweeps) > 1 else r["method"]
            in_sweeps.add(Path(r["run_dir"]).resolve())
        records += recs
    for d in find_runs(path):
        if d.resolve() not in in_sweeps:
            records.append(load_run(d))
    if not records:
        raise ConfigError(f"{path}: no runs found (no {MANIFEST}, no run.json below it)")
    meta = {"kind": "runs", "name": path.name, "dir": str(path), "baseline": None, "axes": {}, "missing": [],
            "arms": []}
    if len(sweeps) == 1 and not [r for r in records if Path(r["run_dir"]).resolve() not in in_sweeps]:
        meta = {**load_sweep(sweeps[0])[1], "kind": "sweep"}
    return records, meta


__all__ = ["find_runs", "load", "load_run", "load_sweep", "read_metrics"]
