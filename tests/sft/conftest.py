"""SFT tests run tiny models: one intra-op thread is as fast and avoids OpenMP oversubscription on busy CPUs."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
