"""Elastic trigger (paper Alg. 1 line 4; spec invariant 12)."""

from __future__ import annotations

import pytest
import torch

from igpo_kit.rl.trigger import all_wrong


def test_all_wrong_per_group():
    correctness = torch.tensor(
        [[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 3.0]]
    )
    assert all_wrong(correctness).tolist() == [True, False, False, False]


def test_format_rewards_are_ignored():
    """A group with varied format rewards but zero correctness still triggers (spec sec. 4 item 2)."""
    correctness = torch.zeros(2, 8)
    fmt = torch.rand(2, 8, generator=torch.Generator().manual_seed(0))  # separate, never passed
    total = correctness + fmt
    assert total.std(dim=1).min() > 0
    assert all_wrong(correctness).tolist() == [True, True]


@pytest.mark.parametrize("n,g", [(1, 1), (1, 8), (5, 4), (64, 8)])
def test_any_number_of_groups(n, g):
    c = torch.zeros(n, g)
    assert all_wrong(c).shape == (n,) and bool(all_wrong(c).all())
    c[-1, -1] = 1.0
    assert all_wrong(c).tolist() == [True] * (n - 1) + [False]


def test_bool_and_1d_inputs():
    assert all_wrong(torch.tensor([False, False])).tolist() == [True]
    assert all_wrong(torch.tensor([[False, True]])).tolist() == [False]
    with pytest.raises(ValueError):
        all_wrong(torch.zeros(2, 2, 2))
