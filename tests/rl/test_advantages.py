"""Group-relative advantages (paper Eq. 2; spec invariant 14)."""

from __future__ import annotations

import pytest
import torch

from igpo_kit.registry import get


def rewards(n=6, g=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    correct = (torch.rand(n, g, generator=gen) < 0.4).float() * 3.0
    fmt = torch.randint(0, 7, (n, g), generator=gen).float() * 0.125
    return correct + fmt  # r = fmt + 3 * correct (released reward scale)


def test_mean_centered_eq2():
    r = rewards()
    a = get("advantage_estimator", "mean_centered")()(r)
    assert a.shape == r.shape and a.dtype == torch.float32
    assert torch.allclose(a.sum(dim=1), torch.zeros(r.shape[0]), atol=1e-5)  # invariant 14
    assert torch.equal(a, r - r.mean(dim=1, keepdim=True))  # no std division


def test_identical_rewards_give_zero_advantage():
    a = get("advantage_estimator", "mean_centered")()(torch.full((3, 8), 0.75))
    assert torch.equal(a, torch.zeros(3, 8))


def test_std_normalized():
    r = rewards(seed=1)
    a = get("advantage_estimator", "std_normalized")(eps=1e-6)(r)
    assert torch.allclose(a.sum(dim=1), torch.zeros(r.shape[0]), atol=1e-4)
    expected = (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-6)
    assert torch.allclose(a, expected)
    assert torch.equal(get("advantage_estimator", "std_normalized")()(torch.ones(2, 1)), torch.zeros(2, 1))


def test_shape_checked():
    with pytest.raises(ValueError):
        get("advantage_estimator", "mean_centered")()(torch.zeros(8))
