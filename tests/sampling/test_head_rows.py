"""The LM head on the block's still-masked rows only (``noise="fast"``): the same tokens and the same random stream
as the head over the whole block (:func:`~igpo_kit.sampling.generate.full_head`, the path before), for the exact
forward and the dual cache, native LLaDA and Dream (shifted), with hints, guidance, a left-padded row, the
threshold, sampling and random remasking; the ``exact`` noise mode still scores the whole block.
(``native``, ``batch``: conftest.py)"""

from __future__ import annotations

import pytest
import torch

from igpo_kit.sampling.dual_cache import dual_cache_forward
from igpo_kit.sampling.generate import full_forward, full_head, generate, guided_rows

L, BL, STEPS = 32, 8, 16  # 4 blocks x 4 steps

CASES = {
    "greedy": dict(),
    "inpainting": dict(hints=True),
    "cfg": dict(hints=True, cfg_scale=0.5),
    "threshold": dict(hints=True, threshold=0.2),
    "tau1.2": dict(hints=True, temperature=1.2),
    "random": dict(temperature=1.2, remasking="random"),
    "eos-exit": dict(hints=True, eos_early_exit=True),
}
FORWARDS = {"exact": full_forward, "dual_cache": dual_cache_forward()}


def _generate(lm, batch, forward, hints=False, **kw):
    prompts, mask, hint_ids, hint_mask = batch
    extra = dict(hint_ids=hint_ids, hint_mask=hint_mask) if hints else {}
    g = torch.Generator().manual_seed(3)
    out = generate(lm, prompts, gen_length=L, block_length=BL, steps=STEPS, attention_mask=mask, generator=g,
                   forward=forward, **extra, **kw)
    return out, g


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("sampler", list(FORWARDS))
def test_head_on_the_masked_rows_gives_the_same_tokens(native, batch, sampler, case):
    forward, kw = FORWARDS[sampler], CASES[case]
    rows, g_rows = _generate(native, batch, forward, **kw)
    block, g_block = _generate(native, batch, full_head(forward), **kw)
    assert torch.equal(rows.sequences, block.sequences) and rows.nfe == block.nfe
    assert torch.equal(g_rows.get_state(), g_block.get_state())  # the same random draws
    assert len(set(rows.completions.flatten().tolist())) > 5  # diverse tokens: not a vacuous comparison
    assert not (rows.completions == native.mask_id).any()


@pytest.mark.parametrize("cfg_scale", [0.0, 0.5])
@pytest.mark.parametrize("noise", ["fast", "exact"])
def test_fast_mode_scores_the_masked_rows_only(native, batch, monkeypatch, noise, cfg_scale):
    """Every forward of the fast mode returns the logits of the block's masked non-hint positions only (``[N, V]``,
    ``[2N, V]`` with the unconditional half of guidance); the exact mode's the whole block ``[B, bl, V]``."""
    shapes = []
    logits, refresh = native.logits, native.logits_and_cache

    def record(out, x, positions):
        cond = x[: batch[0].shape[0], positions]  # hints are tokens, not masks; the unconditional half: the same rows
        n = int((cond == native.mask_id).sum()) * (2 if cfg_scale else 1)
        shapes.append((tuple(out.shape), n, tuple(cond.shape)))
        return out

    def spy_logits(x, mask=None, positions=None, kv_cache=None, rows=None):
        return record(logits(x, mask, positions=positions, kv_cache=kv_cache, rows=rows), x, positions)

    def spy_refresh(x, mask=None, positions=None, rows=None):
        out, cache = refresh(x, mask, positions=positions, rows=rows)
        return record(out, x, positions), cache

    monkeypatch.setattr(native, "logits", spy_logits)
    monkeypatch.setattr(native, "logits_and_cache", spy_refresh)
    for forward in FORWARDS.values():
        _generate(native, batch, forward, hints=True, noise=noise, cfg_scale=cfg_scale)
    assert len(shapes) == 2 * STEPS  # both forwards, every step of every block
    for shape, n, (b, bl) in shapes:
        expected = (n, native.vocab_size) if noise == "fast" else ((2 if cfg_scale else 1) * b, bl, native.vocab_size)
        assert shape == expected


def test_guided_rows_repeat_the_rows_for_the_unconditional_half():
    rows = torch.tensor([1, 4, 5])
    assert guided_rows(rows, 6, 0.0) is rows and guided_rows(None, 6, 0.5) is None
    assert guided_rows(rows, 6, 0.5).tolist() == [1, 4, 5, 7, 10, 11]
