"""``device='auto'`` puts each rank of a node on its own GPU (cuda:LOCAL_RANK), else the CPU."""

import torch

from igpo_kit.models.hf import resolve_device


def test_explicit_device_is_kept():
    assert resolve_device("cuda:3") == "cuda:3" and resolve_device("cpu") == "cpu"


def test_auto_without_gpu_is_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"


def test_auto_follows_local_rank(monkeypatch):
    # no GPU here: pretend one node with 8 GPUs to check the rank -> device mapping itself
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setenv("LOCAL_RANK", "5")
    assert resolve_device("auto") == "cuda:5"
    monkeypatch.delenv("LOCAL_RANK")
    assert resolve_device("auto") == "cuda:0"
