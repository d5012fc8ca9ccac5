"""scripts/install.sh says what it is doing, step by step, on stderr (pip itself replaced by a recorder here:
the real install is what scripts/test.sh and the wheel test exercise)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_install_script_announces_each_step(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "install.sh", tmp_path / "scripts" / "install.sh")
    bin_ = tmp_path / ".venv" / "bin"
    bin_.mkdir(parents=True)
    (bin_ / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_ / "activate").write_text(f'export PATH="{bin_}:$PATH"\n')
    (bin_ / "pip").write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/pip.log"\n')
    (bin_ / "igpo-kit").write_text("#!/bin/sh\necho igpo-kit 0.1.0\n")
    for f in ("python", "pip", "igpo-kit"):
        (bin_ / f).chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(["bash", "scripts/install.sh", "test"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("install:")]
    assert lines[0] == "install: using the existing virtual environment .venv"
    assert lines[1].startswith("install: [2/4] torch ") and lines[1].endswith("already installed: kept")
    assert lines[2].startswith("install: [3/4] installing igpo-kit[test] and its dependencies")
    assert lines[3] == "install:   ... done in 0s" or lines[3].startswith("install:   ... done in ")
    assert lines[4].startswith("install: [4/4] checking the install")
    assert lines[-1].startswith("install: ready in ") and "igpo-kit 0.1.0 in .venv" in lines[-1]
    assert (tmp_path / "pip.log").read_text().split() == ["install", "-q", "-e", ".[test]"]
    quiet = subprocess.run(["bash", "scripts/install.sh"], cwd=tmp_path, capture_output=True, text=True,
                           env={**env, "IGPO_KIT_INSTALL_QUIET": "1"}, timeout=120)
    assert quiet.returncode == 0 and "install:" not in quiet.stderr
