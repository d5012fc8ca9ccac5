"""slurm/local-cluster.sh without starting anything: syntax, usage, template, and that `stop` only ever
touches the daemons whose PID files it wrote."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "slurm" / "local-cluster.sh"
TEMPLATE = REPO / "slurm" / "local" / "slurm.conf.in"


def run(*args, env=None):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, env=env)


def test_syntax_and_usage():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    p = run()
    assert p.returncode == 2 and "usage" in p.stderr


def test_template_placeholders_and_settings():
    text = TEMPLATE.read_text()
    assert set(re.findall(r"@([A-Z_]+)@", text)) == {"HOST", "CPUS", "MEM", "DIR", "CTLD_PORT", "SLURMD_PORT"}
    for line in ("JobRequeue=1", "MinJobAge=", "ProctrackType=proctrack/linuxproc", "PartitionName=debug",
                 "AuthInfo=cred_expire=", "SchedulerParameters="):
        assert line in text


def test_status_and_stop_on_an_empty_state_dir(tmp_path):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SLURM_LOCAL_DIR": str(tmp_path)}
    assert run("status", env=env).returncode == 3
    p = run("stop", env=env)
    assert p.returncode == 0, p.stderr


def test_stop_ignores_pid_files_of_other_processes(tmp_path):
    """A stale PID file that points at an unrelated process must not get it killed."""
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for name in ("slurmd", "slurmctld", "munged"):
            (tmp_path / f"{name}.pid").write_text(f"{victim.pid}\n")
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SLURM_LOCAL_DIR": str(tmp_path)}
        p = run("stop", env=env)
        assert p.returncode == 0, p.stderr
        assert victim.poll() is None, "stop killed a process it did not start"
        assert not (tmp_path / "slurmd.pid").exists()
    finally:
        victim.kill()
        victim.wait()
