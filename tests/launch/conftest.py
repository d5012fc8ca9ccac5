"""Fixtures for the launch tests: a real single-node Slurm (``slurm_cluster``) when one can be had.

Order: ``$SLURM_CONF`` when set and ``sinfo`` answers; else, as root, ``slurm/local-cluster.sh`` (reused when
already running in ``$SLURM_LOCAL_DIR``, else started now and stopped at the end of the session — only what
this fixture started); else the test is skipped with the reason. ``IGPO_KIT_SLURM_TESTS=0`` (the switch
scripts/test.sh reads; ``IGPO_SLURM_TESTS=0`` too) skips on purpose.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "slurm" / "local-cluster.sh"


@dataclass
class SlurmCluster:
    conf: str
    started_here: bool
    cpus: int
    start_s: float = 0.0


def _sinfo(conf: str | None) -> tuple[bool, str]:
    if shutil.which("sinfo") is None:
        return False, "sinfo not found"
    if conf and not Path(conf).is_file():
        return False, "no such file"  # sinfo would retry for 60 s
    env = dict(os.environ)
    if conf:
        env["SLURM_CONF"] = conf
    try:
        p = subprocess.run(["sinfo", "-h", "-p", "debug", "-o", "%T %c"], capture_output=True, text=True,
                           timeout=20, env=env)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, str(exc)
    if p.returncode != 0:
        return False, (p.stderr or p.stdout).strip()[-300:] or f"sinfo exited {p.returncode}"
    if not p.stdout.strip():
        return False, "no 'debug' partition (the tests submit with slurm/clusters/local.toml)"
    return True, p.stdout.strip()


def _export_line(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith("export SLURM_CONF="):
            return line.split("=", 1)[1].strip()
    return None


def _cpus(sinfo_out: str) -> int:
    try:
        return int(sinfo_out.split()[1])
    except (IndexError, ValueError):
        return 1


@pytest.fixture(scope="session")
def slurm_cluster():
    """A working Slurm for submitit ``cluster="slurm"`` jobs; sets ``SLURM_CONF`` (and ``PYTHONPATH`` so jobs
    import this checkout) for the session."""
    for switch in ("IGPO_KIT_SLURM_TESTS", "IGPO_SLURM_TESTS"):
        if os.environ.get(switch) == "0":
            pytest.skip(f"Slurm unavailable: disabled by {switch}=0")
    reasons = []
    conf = os.environ.get("SLURM_CONF")
    started = False
    t0 = time.time()
    ok, out = _sinfo(conf) if conf else (False, "")
    if conf and not ok:
        reasons.append(f"SLURM_CONF={conf} but sinfo failed ({out})")
    if not ok:
        if os.geteuid() != 0:
            pytest.skip("Slurm unavailable: " + "; ".join([*reasons, "not root, cannot start slurm/local-cluster.sh"]))
        if not SCRIPT.is_file() or shutil.which("bash") is None:
            pytest.skip("Slurm unavailable: " + "; ".join([*reasons, f"{SCRIPT} or bash missing"]))
        status = subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True, text=True, timeout=60)
        conf = _export_line(status.stdout) if status.returncode == 0 else None
        if conf is None:
            try:
                start = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=600)
            except subprocess.TimeoutExpired:
                subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, timeout=120)
                pytest.skip("Slurm unavailable: local-cluster.sh start timed out")
            conf = _export_line(start.stdout)
            if start.returncode != 0 or conf is None:
                tail = " | ".join(start.stderr.strip().splitlines()[-4:])
                pytest.skip(f"Slurm unavailable: local-cluster.sh start failed (rc {start.returncode}): {tail}")
            started = True
        ok, out = _sinfo(conf)
        if not ok:
            if started:
                subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, timeout=120)
            pytest.skip(f"Slurm unavailable: sinfo fails on the local cluster ({out})")
    cluster = SlurmCluster(conf=conf, started_here=started, cpus=_cpus(out), start_s=time.time() - t0)
    mp = pytest.MonkeyPatch()
    mp.setenv("SLURM_CONF", conf)
    mp.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    try:
        yield cluster
    finally:
        mp.undo()
        if started:
            subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, text=True, timeout=180)
