"""Fast-dLLM's confidence-threshold parallel decoding (``threshold=``): an opt-in approximation of the sampler."""

from __future__ import annotations

import pytest
import torch

from igpo_kit.errors import ConfigError
from igpo_kit.sampling.generate import generate, low_confidence
from igpo_kit.sampling.noise import token_confidence

L, BL, STEPS = 32, 8, 16


def _gen(model, prompts, **kw):
    kw.setdefault("gen_length", L)
    kw.setdefault("block_length", BL)
    kw.setdefault("steps", STEPS)
    return generate(model, prompts, **kw)


def test_threshold_one_is_one_token_per_step(toy_lm, prompts):
    """threshold = 1 commits only each row's most confident mask per step: the exact sampler with steps = L."""
    out = _gen(toy_lm, prompts, threshold=1.0)
    one_by_one = _gen(toy_lm, prompts, steps=L)
    assert torch.equal(out.sequences, one_by_one.sequences)
    assert out.nfe == L


def test_tiny_threshold_commits_a_block_per_step(toy_lm, prompts):
    """A threshold below every confidence commits the whole block at its first step (argmax everywhere)."""
    out = _gen(toy_lm, prompts, threshold=1e-300)
    assert out.nfe == L // BL
    x = torch.cat([prompts, torch.full((3, L), toy_lm.mask_id)], dim=1)
    with torch.inference_mode():
        first = toy_lm.logits(x, positions=slice(prompts.shape[1], prompts.shape[1] + BL)).argmax(-1)
    assert torch.equal(out.completions[:, :BL], first)
    assert not (out.completions == toy_lm.mask_id).any()


def test_threshold_rule_at_every_step(toy_factory, prompts, hints_factory):
    """Every step commits exactly {masked, confidence >= threshold} plus each row's top-1 mask; hints untouched;
    fewer forward passes than the schedule; a different result from the exact sampler (an approximation)."""
    lm = toy_factory(scale=4.0)
    hint_ids, hint_mask = hints_factory(3, L, frac=0.3)
    hint_mask[0, :BL] = True  # row 0's block 0 is all hints: that row commits nothing there
    plen, threshold = prompts.shape[1], 0.5
    steps, before = [], {}

    def on_step(info):
        steps.append((info.block, info.transferred.clone(), info.num_transfer.clone(), info.sequences.clone()))

    x_prev = torch.cat([prompts, torch.where(hint_mask, hint_ids, lm.mask_id)], dim=1)
    out = _gen(lm, prompts, threshold=threshold, hint_ids=hint_ids, hint_mask=hint_mask, on_step=on_step)
    assert len(steps) == out.nfe and out.nfe < STEPS
    multi = 0
    for block, moved, k, seq in steps:
        blk = slice(plen + block * BL, plen + (block + 1) * BL)
        with torch.inference_mode():
            logits = lm.logits(x_prev, positions=blk)
        masked = (x_prev[:, blk] == lm.mask_id)
        tokens = logits.argmax(-1)
        conf = torch.where(masked, token_confidence(logits, tokens), -torch.inf)
        top = torch.zeros_like(masked).scatter_(1, conf.argmax(1, keepdim=True), True)
        expected = ((conf >= threshold) | top) & masked
        assert torch.equal(moved[:, blk], expected)
        assert not moved[:, :blk.start].any() and not moved[:, blk.stop:].any()
        assert torch.equal(k, expected.sum(1))
        assert torch.equal(seq[:, blk][expected], tokens[expected])
        multi += int((k > 1).any())
        x_prev = seq
    assert multi > 0  # some step committed several tokens of a row: the rule was exercised
    assert torch.equal(out.completions[hint_mask], hint_ids[hint_mask])
    assert not (out.completions == lm.mask_id).any()
    assert not steps[0][1][0].any()  # row 0 had nothing to do in block 0


def test_threshold_eos_early_exit_and_sampling(toy_factory, prompts):
    lm = toy_factory(eos_bias=100.0)
    out = _gen(lm, prompts, threshold=0.9, temperature=1.0, generator=torch.Generator().manual_seed(3),
               eos_early_exit=True)
    assert out.early_exit and out.nfe == 1  # all of block 0 is EOS with p ~ 1: one step, then the exit
    assert bool((out.completions == lm.eos_id).all())


def test_unused_threshold_changes_nothing(toy_lm, prompts):
    assert torch.equal(_gen(toy_lm, prompts, threshold=None).sequences, _gen(toy_lm, prompts).sequences)
    assert low_confidence().threshold is None


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, float("nan"), True, "0.9"])
def test_threshold_validation(toy_lm, prompts, bad):
    with pytest.raises(ConfigError, match=r"threshold must be in \(0, 1\]"):
        _gen(toy_lm, prompts, threshold=bad)
    with pytest.raises(ConfigError, match=r"threshold must be in \(0, 1\]"):
        low_confidence(gen_length=L, block_length=BL, steps=STEPS, threshold=bad)


def test_threshold_needs_low_confidence(toy_lm, prompts):
    with pytest.raises(ConfigError, match="low_confidence"):
        _gen(toy_lm, prompts, threshold=0.9, remasking="random", generator=torch.Generator())
