"""``DiffusionLM.logits(..., rows=)``: the logits of selected entries of the block only (a sampler's still-masked
positions), ``[N, V]`` in row-major order, equal to those entries of the block's ``[B, T', V]`` logits -- native
LLaDA and Dream (shifted; the LM head on those rows only), uncached, cache refresh and cached window; the tiny
Gemma (HF, no native interface) by picking the rows of the block's logits; left padding, ``suppress_mask``."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from igpo_kit.models.native import select_positions, select_rows
from igpo_kit.models.tiny import tiny

BLOCK = slice(24, 32)


@pytest.fixture(scope="module", params=["llada", "dream", "gemma"])
def lm(request):
    return tiny(architecture=request.param, seed=1)


@pytest.fixture(scope="module")
def inputs():
    """``x [3, 40]`` (row 0 left-padded by 5, masks in the block), padding mask, and a row mask ``[3, 8]`` with
    an empty row and a full one."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(10, 100, (3, 40), generator=g)
    mask = torch.ones_like(x)
    mask[0, :5] = 0
    rows = torch.rand(3, 8, generator=g) < 0.5
    rows[1], rows[2] = False, True
    rows[1, 7] = True
    return x, mask, rows


def _head_inputs(lm, monkeypatch) -> list[torch.Size]:
    """Record the shape of every input of the LM head (the native networks' ``project``)."""
    seen = []
    project = lm.network.project

    def spy(hidden):
        seen.append(hidden.shape)
        return project(hidden)

    monkeypatch.setattr(lm.network, "project", spy)
    return seen


@torch.no_grad()
@pytest.mark.parametrize("padded", [True, False], ids=["left-padded", "unpadded"])
def test_rows_are_the_masked_entries_of_the_block_logits(lm, inputs, padded, monkeypatch):
    x, mask, rows = inputs
    mask = mask if padded else None
    block = lm.logits(x, mask, positions=BLOCK)  # [3, 8, V]
    flat = rows.reshape(-1).nonzero().squeeze(-1)
    seen = _head_inputs(lm, monkeypatch) if lm.kv_cache else []
    for selector in (rows, flat):  # a bool mask or its flat indices
        picked = lm.logits(x, mask, positions=BLOCK, rows=selector)
        assert picked.shape == (int(rows.sum()), lm.vocab_size)
        torch.testing.assert_close(picked, block[rows], rtol=0, atol=1e-6)
    if lm.kv_cache:  # native: the LM head ran on the N selected rows only, not on the block
        assert [(s.numel() // s[-1]) for s in seen] == [int(rows.sum())] * 2 and all(len(s) == 2 for s in seen)


@torch.no_grad()
def test_rows_without_logits_slice_and_without_suppress_mask(inputs):
    """The fallbacks: an HF network that cannot slice its head computes all positions, then the block's rows;
    ``suppress_mask`` applies to the rows' logits (and stays off when off)."""
    x, mask, rows = inputs
    gemma = tiny(architecture="gemma", seed=1)
    for variant in (dataclasses.replace(gemma, logits_slice=False), dataclasses.replace(gemma, suppress_mask=False)):
        picked = variant.logits(x, mask, positions=BLOCK, rows=rows)
        torch.testing.assert_close(picked, variant.logits(x, mask, positions=BLOCK)[rows], rtol=0, atol=1e-6)
        suppressed = bool((picked[:, gemma.mask_id] == torch.finfo(picked.dtype).min).all())
        assert suppressed == variant.suppress_mask


@pytest.mark.parametrize("arch", ["llada", "dream"])
@torch.no_grad()
def test_rows_of_the_cache_refresh_and_of_a_cached_window(arch, inputs, monkeypatch):
    """``logits_and_cache`` and the cached window step take the same rows (Dream's window starts one position
    earlier: the rows still index the block's tokens); the refreshed cache does not depend on the rows."""
    x, mask, rows = inputs
    lm = tiny(architecture=arch, seed=1)
    block, cache = lm.logits_and_cache(x, mask, positions=BLOCK)
    picked, cache_rows = lm.logits_and_cache(x, mask, positions=BLOCK, rows=rows)
    torch.testing.assert_close(picked, block[rows], rtol=0, atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(cache.keys + cache.values, cache_rows.keys + cache_rows.values))
    y = x.clone()
    y[:, 26:29] = 7  # tokens committed in the block since the refresh
    window = lm.logits(y, mask, positions=BLOCK, kv_cache=cache)
    seen = _head_inputs(lm, monkeypatch)
    picked = lm.logits(y, mask, positions=BLOCK, kv_cache=cache, rows=rows)
    torch.testing.assert_close(picked, window[rows], rtol=0, atol=1e-6)
    assert len(seen) == 1 and len(seen[0]) == 2 and seen[0][0] == int(rows.sum())  # the head on the rows only
    assert bool((picked[:, lm.mask_id] == torch.finfo(picked.dtype).min).all())  # suppress_mask (tiny: on)


def test_select_rows_and_positions_order():
    """Row-major order (``nonzero``'s): row 0's selected columns, then row 1's ...; after ``logits_to_keep``."""
    grid = torch.arange(2 * 5).view(2, 5, 1)
    rows = torch.tensor([[False, True, False, True], [True, False, False, True]])
    assert select_rows(grid[:, 1:], rows).flatten().tolist() == [2, 4, 6, 9]
    assert select_positions(grid, slice(1, 5), rows).flatten().tolist() == [2, 4, 6, 9]
    keep = torch.tensor([0, 1, 2, 3])  # a shifted model keeps the positions one earlier
    assert select_positions(grid, keep, rows.reshape(-1).nonzero().squeeze(-1)).flatten().tolist() == [1, 3, 5, 8]
    assert select_positions(grid, 2, torch.tensor([3])).flatten().tolist() == [9]
