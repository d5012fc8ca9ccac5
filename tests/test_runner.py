"""The runner's failure paths on a real full disk (a small tmpfs): run.json says "failed" with the reason, a FAILED
marker exists, no temp file or half-written checkpoint is left; a damaged checkpoint names its file."""

from __future__ import annotations

import json
import subprocess

import pytest

from igpo_kit.runner import prepare, run_local


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("a full-disk test needs a small tmpfs (mount, as root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_leaves_run_json_failed_with_the_reason_and_no_temp_files(small_disk):
    plan = prepare("tiny/igpo.gin", bindings=["entry.rl.max_steps = 2"], runs_dir=small_disk)
    with pytest.raises(Exception) as info:
        run_local(plan, argv=["igpo-kit", "run", "tiny/igpo.gin"])
    run_dir = plan.run_dir
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "failed", record
    assert record["error"].startswith(type(info.value).__name__)
    assert (run_dir / "FAILED").exists() and not (run_dir / "DONE").exists()
    left = [p.relative_to(small_disk) for p in small_disk.rglob("*") if ".tmp" in p.name]
    assert left == []


def test_damaged_checkpoint_names_the_file_and_the_previous_checkpoint(tmp_path):
    import torch

    from igpo_kit.checkpoint import load_latest, save_checkpoint
    from igpo_kit.errors import RunError

    for step in (1, 2):
        save_checkpoint(tmp_path, step, {"step": torch.tensor(step)}, keep=None)
    state = tmp_path / "checkpoints" / "step_2" / "state.pt"
    state.write_bytes(state.read_bytes()[:50])  # truncated
    with pytest.raises(RunError) as info:
        load_latest(tmp_path)
    msg = str(info.value)
    assert msg.startswith(f"{state}: damaged checkpoint file (")
    assert f"echo step_1 > {tmp_path / 'checkpoints' / 'latest'}" in msg
