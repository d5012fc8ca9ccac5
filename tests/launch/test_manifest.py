"""manifest.json: atomic round trip, and job states from sacct / squeue / files."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from igpo_kit.errors import ConfigError
from igpo_kit.launch import manifest as mf
from igpo_kit.launch.manifest import JobEntry, Manifest, job_records, job_states, parse_state_table, read_manifest


def _manifest(tmp_path: Path, executor: str = "slurm", n: int = 3) -> Manifest:
    jobs = []
    for i in range(n):
        d = tmp_path / f"12_{i}"
        d.mkdir(parents=True, exist_ok=True)
        jobs.append(JobEntry(job_id=f"12_{i}", array_index=i, run_dir=str(tmp_path / f"run{i}"),
                             stdout=str(d / f"12_{i}_0_log.out"), stderr=str(d / f"12_{i}_0_log.err"),
                             result=str(d / f"12_{i}_0_result.pkl")))
    return Manifest(executor=executor, jobs=jobs, folder=str(tmp_path / "%j"), cluster="local", resources="tiny",
                    kind="sweep", name="grid")


def test_round_trip_is_atomic_and_keeps_unknown_keys(tmp_path):
    m = _manifest(tmp_path)
    path = m.save(tmp_path / "sweep")
    assert path == tmp_path / "sweep" / "manifest.json"
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    data = json.loads(path.read_text())
    data["future_key"] = 1
    path.write_text(json.dumps(data))
    back = read_manifest(path.parent)
    assert back.jobs == m.jobs and back.name == "grid" and back.path == path
    assert back.extra["future_key"] == 1
    assert back.run_dirs() == {i: str(tmp_path / f"run{i}") for i in range(3)}
    back.save()
    assert "future_key" in read_manifest(path).extra


def test_read_missing_manifest(tmp_path):
    with pytest.raises(ConfigError, match="no manifest.json"):
        read_manifest(tmp_path)


def test_parse_state_table():
    text = "12_0|COMPLETED\n12_1|CANCELLED by 0\n12_[2-4%2]|PENDING\n13|RUNNING\n13.batch|RUNNING\n14|FAILED+\n"
    assert parse_state_table(text) == {"12_0": "COMPLETED", "12_1": "CANCELLED", "12_2": "PENDING",
                                       "12_3": "PENDING", "12_4": "PENDING", "13": "RUNNING", "14": "FAILED"}


def test_states_from_sacct_and_squeue(tmp_path, monkeypatch):
    m = _manifest(tmp_path)
    monkeypatch.setattr(mf, "sacct_states", lambda ids: {"12_0": "COMPLETED", "12_1": "RUNNING"})
    monkeypatch.setattr(mf, "squeue_states", lambda ids: {"12_2": "PENDING"})
    recs = {r.job_id: (r.state, r.source) for r in job_records(m)}
    assert recs == {"12_0": ("COMPLETED", "sacct"), "12_1": ("RUNNING", "sacct"), "12_2": ("PENDING", "squeue")}


def test_states_without_any_slurm_command(tmp_path, monkeypatch):
    """No sacct, no squeue (PATH empty): result pickles, run-dir markers, recorded cancels, Slurm log lines."""
    monkeypatch.setenv("PATH", "/nonexistent")
    m = _manifest(tmp_path, n=6)
    with open(m.jobs[0].result, "wb") as f:
        pickle.dump(("success", {"x": 1}), f)
    with open(m.jobs[1].result, "wb") as f:
        pickle.dump(("error", "Traceback ..."), f)
    Path(m.jobs[2].run_dir).mkdir()
    (Path(m.jobs[2].run_dir) / "DONE").write_text("")
    m.cancelled["12_3"] = "2026-01-01T00:00:00Z"
    Path(m.jobs[4].stderr).write_text("slurmstepd-vm: error: *** JOB 12 ON vm CANCELLED AT 2026-11-22T05:40:53 "
                                      "DUE TO TIME LIMIT ***\n")
    recs = {r.job_id: (r.state, r.source) for r in job_records(m)}
    assert recs == {"12_0": ("COMPLETED", "result"), "12_1": ("FAILED", "result"), "12_2": ("COMPLETED", "marker"),
                    "12_3": ("CANCELLED", "manifest"), "12_4": ("TIMEOUT", "log"), "12_5": ("UNKNOWN", "none")}
    assert mf.summarize(job_states(m)) == {"CANCELLED": 1, "COMPLETED": 2, "FAILED": 1, "TIMEOUT": 1, "UNKNOWN": 1}


def test_sacct_failure_means_fallback(tmp_path, monkeypatch):
    """A sacct that exits 1 (accounting disabled) is ignored, not reported as a state."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sacct").write_text("#!/bin/sh\necho 'Slurm accounting storage is disabled' >&2\nexit 1\n")
    (bindir / "squeue").write_text("#!/bin/sh\nprintf '12_0|RUNNING\\n99|RUNNING\\n'\n")
    for p in bindir.iterdir():
        p.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    m = _manifest(tmp_path, n=2)
    assert mf.sacct_states(m.job_ids) is None
    assert mf.squeue_states(m.job_ids) == {"12_0": "RUNNING"}
    assert job_states(m) == {"12_0": "RUNNING", "12_1": "UNKNOWN"}


def test_cancel_slurm_records_and_saves(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "scancel.args"
    (bindir / "scancel").write_text(f"#!/bin/sh\necho \"$@\" > {log}\n")
    (bindir / "scancel").chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    m = _manifest(tmp_path)
    m.save(tmp_path / "sweep")
    assert mf.cancel(m) == ["12"]
    assert log.read_text().strip() == "12"
    assert "12" in read_manifest(tmp_path / "sweep").cancelled
    assert set(job_states(m).values()) == {"CANCELLED"}


def test_from_jobs_with_submitit_local_jobs(tmp_path):
    import submitit

    ex = submitit.AutoExecutor(folder=tmp_path / "%j", cluster="debug")
    jobs = [ex.submit(int, "3")]
    m = mf.from_jobs(jobs, executor="debug", run_dirs=[str(tmp_path / "run")])
    assert m.jobs[0].job_id == jobs[0].job_id and m.jobs[0].run_dir == str(tmp_path / "run")
    assert m.folder == str(tmp_path / "%j") and m.sbatch_script is None
    assert json.loads(json.dumps(m.to_dict()))["executor"] == "debug"
    assert os.path.basename(m.jobs[0].result).endswith("_result.pkl")
