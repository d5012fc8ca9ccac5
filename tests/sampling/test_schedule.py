"""Transfer schedule and block helpers (spec sec. 1.2; invariant 1)."""

from __future__ import annotations

import pytest
import torch

from igpo_kit.sampling import reference
from igpo_kit.sampling.generate import generate
from igpo_kit.sampling.schedule import block_bounds, block_mask_counts, check_lengths, num_transfer_tokens


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 8, 16, 40])
def test_num_transfer_tokens_properties(steps):
    counts = torch.tensor([0, 1, 2, 7, 8, 16, 31, 32, 33])
    sched = num_transfer_tokens(counts, steps)
    assert sched.shape == (len(counts), steps) and sched.dtype == torch.long
    assert torch.equal(sched.sum(1), counts)
    assert int((sched.max(1).values - sched.min(1).values).max()) <= 1  # entries differ by at most 1
    assert bool((sched[:, :-1] >= sched[:, 1:]).all())  # larger ones first
    base = counts // steps
    for j, m in enumerate(counts.tolist()):
        for i in range(steps):
            assert sched[j, i] == base[j] + (1 if i < m % steps else 0)


@pytest.mark.parametrize("steps", [1, 3, 4, 16])
def test_num_transfer_tokens_matches_reference(steps):
    g = torch.Generator().manual_seed(0)
    block_mask = torch.rand(6, 32, generator=g) < 0.6
    ref = reference.get_num_transfer_tokens(block_mask, steps)
    assert torch.equal(num_transfer_tokens(block_mask.sum(1), steps), ref)


def test_check_lengths_and_bounds():
    assert check_lengths(256, 32, 128) == (8, 16)
    assert check_lengths(32, 32, 5) == (1, 5)
    with pytest.raises(ValueError, match="multiple of block_length"):
        check_lengths(100, 32, 128)
    with pytest.raises(ValueError, match="multiple of the number of blocks"):
        check_lengths(256, 32, 100)
    with pytest.raises(ValueError, match="positive"):
        check_lengths(0, 32, 8)
    assert block_bounds(5, 24, 8) == [(5, 13), (13, 21), (21, 29)]
    masked = torch.zeros(2, 5 + 16, dtype=torch.bool)
    masked[0, 5:9] = True
    masked[1, 13:21] = True
    assert block_mask_counts(masked, 5, 8).tolist() == [[4, 0], [0, 8]]


@pytest.mark.parametrize("noise", ["fast", "exact"])
def test_schedule_invariant_with_hints(toy_lm, prompts, hints_factory, noise):
    """Invariant 1 inside generate: per block and row the step counts sum to the non-hint masks m_j, differ by at
    most 1, larger first; a block's hints reduce its budget."""
    gen_length, block_length, steps = 32, 8, 12  # S = 3 does not divide most m_j: remainders matter
    hint_ids, hint_mask = hints_factory(3, gen_length, frac=0.35)
    records = []
    out = generate(
        toy_lm, prompts, gen_length=gen_length, block_length=block_length, steps=steps, temperature=1.0,
        hint_ids=hint_ids, hint_mask=hint_mask, generator=torch.Generator().manual_seed(1), noise=noise,
        on_step=lambda info: records.append((info.block, info.step, info.num_transfer.clone())),
    )
    s = steps // (gen_length // block_length)
    for b in range(gen_length // block_length):
        m = (~hint_mask[:, b * block_length : (b + 1) * block_length]).sum(1)
        got = torch.stack([k for (bb, _, k) in records if bb == b], dim=1) if m.sum() else None
        if got is None:
            assert not any(bb == b for (bb, _, _) in records)
            continue
        assert got.shape == (3, s)
        assert torch.equal(got.sum(1), m)
        assert int((got.max(1).values - got.min(1).values).max()) <= 1
        assert bool((got[:, :-1] >= got[:, 1:]).all())
    assert not (out.completions == toy_lm.mask_id).any()
