"""bench/models.py runs end to end on small sizes (native vs remote forward, full and sliced logits)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("IGPO_KIT_SHARED", ROOT.parent / "shared"))


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_models_bench_smoke(family):
    if not (SHARED / "models" / family / "config.json").is_file():
        pytest.skip(f"{SHARED / 'models' / family} is absent: the benchmark builds its checkpoint from the real files")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "IGPO_KIT_SHARED": str(SHARED)}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "models.py"), "--family", family, "--d-model", "64",
                           "--layers", "1", "--heads", "4", "--length", "48", "--block", "16", "--repeats", "1"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines() if line.split()[:1] in (["full"], ["slice"])}
    assert set(rows) == {"full", "slice"} and all(float(v) > 0 for r in rows.values() for v in r)
