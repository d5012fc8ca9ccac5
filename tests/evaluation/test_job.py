"""Evaluation shows its progress (samples generated of the total, elapsed, time left)."""

import json
import subprocess
import sys


def test_eval_progress_lines(tmp_path):
    import os

    r = subprocess.run([sys.executable, "-m", "igpo_kit.cli.main", "run", "tiny/eval.gin", "--json", "--runs-dir",
                        str(tmp_path), "-b", "gsm8k/dataset.gsm8k.limit = 2"], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "IGPO_KIT_PROGRESS_EVERY": "0"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["run_dir"]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("progress: eval gsm8k")]
    assert lines[-1].startswith("progress: eval gsm8k: samples generated 2/2 (100%)  done in "), r.stderr[-2000:]
