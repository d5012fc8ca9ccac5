"""Entropy-based filtering of hint tokens (paper Sec. 3.1; spec sec. 6, invariant 17)."""

from __future__ import annotations

import pytest
import torch

from igpo_kit.registry import get

L = 40


def setup(seed=0, b=4):
    g = torch.Generator().manual_seed(seed)
    entropies = torch.rand(b, L, generator=g) * 5
    hint = torch.zeros(b, L, dtype=torch.bool)
    hint[0, 5:15] = True  # n = 10
    hint[1, 0:23] = True  # n = 23
    hint[2, 30:33] = True  # n = 3 -> int(0.6) = 0 -> max(1, .) = 1
    return entropies, hint  # row 3: no hints


@pytest.mark.parametrize("tau", [0.0, 0.2, 0.5, 1.0])
def test_kept_counts_invariant_17(tau):
    entropies, hint = setup()
    loss_mask = torch.ones_like(hint)
    keep = get("entropy_filter", "top_fraction")(entropy_top_fraction=tau)(entropies, hint, loss_mask)
    for i in range(4):
        n = int(hint[i].sum())
        k = max(1, int(tau * n)) if n else 0
        assert int(keep[i].sum()) == L - n + k  # kept = L - n + max(1, int(tau n))
        assert bool(keep[i][~hint[i]].all())  # every non-hint token kept
        if n:
            kept_h = entropies[i][hint[i] & keep[i]]
            dropped_h = entropies[i][hint[i] & ~keep[i]]
            if len(dropped_h):
                assert kept_h.min() >= dropped_h.max()  # highest-entropy hints kept
    assert torch.equal(keep[3], loss_mask[3])  # rows without hints unchanged


def test_respects_the_loss_mask():
    entropies, hint = setup(1)
    loss_mask = torch.ones_like(hint)
    loss_mask[1, 10:] = False  # row 1: only 10 hint tokens in the loss
    loss_mask[3, 20:] = False
    keep = get("entropy_filter", "top_fraction")()(entropies, hint, loss_mask)
    assert not bool((keep & ~loss_mask).any())
    assert int((keep[1] & hint[1]).sum()) == 2  # int(0.2 * 10)
    assert torch.equal(keep[3], loss_mask[3])


def test_none_keeps_everything():
    entropies, hint = setup()
    loss_mask = torch.rand(4, L, generator=torch.Generator().manual_seed(2)) < 0.8
    assert torch.equal(get("entropy_filter", "none")()(entropies, hint, loss_mask), loss_mask)


def test_checks():
    with pytest.raises(ValueError):
        get("entropy_filter", "top_fraction")(entropy_top_fraction=1.5)
    with pytest.raises(ValueError):
        get("entropy_filter", "top_fraction")()(torch.zeros(2, 3), torch.zeros(2, 4, dtype=torch.bool), torch.ones(2, 3))
