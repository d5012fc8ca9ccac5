"""Atomic checkpoints: partial writes are never loaded, `latest` is the commit point, pruning keeps the newest."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from igpo_kit.checkpoint import (
    capture_generators,
    latest_name,
    list_checkpoints,
    load_latest,
    model_dir,
    restore_generators,
    save_checkpoint,
)


def _state(step: int) -> dict:
    return {"step": step, "weights": torch.full((3,), float(step)), "nested": {"a": [1, 2], "b": (3.5, None)}}


def test_roundtrip_and_model_writer(tmp_path):
    def writer(p):
        (p / "weights.txt").write_text("w")

    path = save_checkpoint(tmp_path, 5, _state(5), writer)
    assert path == tmp_path / "checkpoints" / "step_5"
    assert latest_name(tmp_path) == "step_5"
    loaded_path, state = load_latest(tmp_path)
    assert loaded_path == path
    assert state["step"] == 5 and torch.equal(state["weights"], torch.full((3,), 5.0))
    assert state["nested"] == {"a": [1, 2], "b": (3.5, None)}
    assert (model_dir(path) / "weights.txt").read_text() == "w"
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_nothing_to_load(tmp_path):
    assert load_latest(tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    assert load_latest(tmp_path) is None


def test_tmp_dir_never_loaded(tmp_path):
    save_checkpoint(tmp_path, 1, _state(1))
    # a save of step 2 interrupted before the rename: a complete-looking tmp dir
    shutil.copytree(tmp_path / "checkpoints" / "step_1", tmp_path / "checkpoints" / "step_2.tmp")
    torch.save(_state(2), tmp_path / "checkpoints" / "step_2.tmp" / "state.pt")
    path, state = load_latest(tmp_path)
    assert path.name == "step_1" and state["step"] == 1
    # the next save clears the leftover
    save_checkpoint(tmp_path, 3, _state(3))
    assert not (tmp_path / "checkpoints" / "step_2.tmp").exists()
    assert load_latest(tmp_path)[1]["step"] == 3


def test_renamed_but_unpublished_dir_not_loaded(tmp_path):
    save_checkpoint(tmp_path, 1, _state(1))
    # crash after the rename of step_2 but before `latest` was updated
    shutil.copytree(tmp_path / "checkpoints" / "step_1", tmp_path / "checkpoints" / "step_2")
    torch.save(_state(2), tmp_path / "checkpoints" / "step_2" / "state.pt")
    path, state = load_latest(tmp_path)
    assert path.name == "step_1" and state["step"] == 1
    # re-saving step 2 replaces the stale directory
    save_checkpoint(tmp_path, 2, {"step": 2, "fresh": True})
    assert load_latest(tmp_path)[1] == {"step": 2, "fresh": True}


def test_latest_pointing_at_missing_dir(tmp_path):
    save_checkpoint(tmp_path, 1, _state(1))
    (tmp_path / "checkpoints" / "latest").write_text("step_9\n")
    with pytest.warns(RuntimeWarning, match="missing or incomplete"):
        assert load_latest(tmp_path) is None
    # latest naming a dir without state.pt (incomplete) is not loaded either
    (tmp_path / "checkpoints" / "step_9").mkdir()
    with pytest.warns(RuntimeWarning):
        assert load_latest(tmp_path) is None
    # malformed latest
    (tmp_path / "checkpoints" / "latest").write_text("../../etc\n")
    assert load_latest(tmp_path) is None


def test_keep_pruning(tmp_path):
    for s in (1, 2, 3, 4):
        save_checkpoint(tmp_path, s, _state(s), keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [3, 4]
    save_checkpoint(tmp_path, 5, _state(5), keep=None)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [3, 4, 5]
    save_checkpoint(tmp_path, 6, _state(6), keep=1)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [6]
    # saving an older step keeps it (it is what `latest` names) besides the `keep` newest by step
    save_checkpoint(tmp_path, 2, _state(2), keep=1)
    assert latest_name(tmp_path) == "step_2"
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 6]
    with pytest.raises(ValueError):
        save_checkpoint(tmp_path, 7, _state(7), keep=0)


def test_latest_written_via_replace(tmp_path, monkeypatch):
    """`latest` is only ever replaced atomically: a failure during the state write leaves it untouched."""
    save_checkpoint(tmp_path, 1, _state(1))

    def boom(_path):
        raise OSError("disk full")

    with pytest.raises(OSError):
        save_checkpoint(tmp_path, 2, _state(2), boom)
    assert latest_name(tmp_path) == "step_1"
    assert load_latest(tmp_path)[1]["step"] == 1
    assert not (tmp_path / "checkpoints" / "step_2").exists()
    assert not [p for p in os.listdir(tmp_path / "checkpoints") if p.startswith(".latest")]


def test_generator_states_roundtrip(tmp_path):
    g1 = torch.Generator().manual_seed(1)
    g2 = torch.Generator().manual_seed(2)
    torch.rand(5, generator=g1)
    save_checkpoint(tmp_path, 1, {"generators": capture_generators({"a": g1, "b": g2})})
    expected_a = torch.rand(4, generator=g1)
    expected_b = torch.rand(4, generator=g2)
    h1, h2 = torch.Generator().manual_seed(99), torch.Generator()
    restore_generators({"a": h1, "b": h2}, load_latest(tmp_path)[1]["generators"])
    assert torch.equal(torch.rand(4, generator=h1), expected_a)
    assert torch.equal(torch.rand(4, generator=h2), expected_b)
    with pytest.raises(KeyError):
        restore_generators({"c": h1}, {"a": g1.get_state()})
