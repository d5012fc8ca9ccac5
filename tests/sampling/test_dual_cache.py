"""``sampler.dual_cache``: Fast-dLLM's dual key/value cache on the native models (an approximation of the sampler).

Exactness with a refresh at every step, the cache refreshed once per block from the sequence as the previous
block left it, hints never overwritten, the EOS early exit, guidance, padding, Dream's shifted logits; a model
without the cache interface is refused naming the samplers that work.
"""

from __future__ import annotations

import pytest
import torch

from igpo_kit.errors import ConfigError
from igpo_kit.sampling.dual_cache import DualCacheSampler, dual_cache
from igpo_kit.sampling.generate import generate, low_confidence

L, BL, STEPS = 32, 8, 16  # 4 blocks x 4 steps


def test_model_without_cache_is_refused(tiny_lm, prompts):
    s = dual_cache(gen_length=L, block_length=BL, steps=STEPS)
    with pytest.raises(ConfigError) as err:
        s(tiny_lm, prompts)
    msg = str(err.value)
    assert "sampler.dual_cache" in msg and tiny_lm.name in msg
    assert "sampler.low_confidence" in msg and "sampler.random" in msg and "\n" not in msg
    with pytest.raises(ConfigError):
        s.check_model(tiny_lm)
    low_confidence().check_model(tiny_lm)  # the exact sampler runs on anything


def test_options_are_validated():
    with pytest.raises(ConfigError, match="refresh"):
        dual_cache(refresh="never")
    with pytest.raises(ConfigError, match=r"threshold must be in \(0, 1\]"):
        dual_cache(threshold=0.0)
    with pytest.raises(ConfigError, match="multiple of block_length"):
        dual_cache(gen_length=30, block_length=8, steps=16)
    assert isinstance(dual_cache(), DualCacheSampler) and dual_cache().remasking == "low_confidence"


def test_registered_and_described_as_an_approximation():
    from igpo_kit.components import sampler
    from igpo_kit.registry import get, registry

    assert get("sampler", "dual_cache") is dual_cache and sampler.dual_cache is dual_cache
    entry = registry("sampler").entry("dual_cache")
    assert "APPROXIMATE" in entry.summary
    assert "APPROXIMATION" in dual_cache.__doc__


def test_cli_exits_2_naming_the_model_and_the_samplers_that_work(tmp_path):
    from typer.testing import CliRunner

    from igpo_kit.cli.main import app

    r = CliRunner().invoke(app, ["run", "tiny/eval.gin", "--runs-dir", str(tmp_path),
                                 "-b", "gsm8k/tasks.task.sampler = @sampler.dual_cache()",
                                 "-b", "sampler.dual_cache.gen_length = 64", "-b", "sampler.dual_cache.steps = 32"])
    out = r.output.replace("\n", " ")
    assert r.exit_code == 2, r.output
    assert "tiny has none" in out and "sampler.low_confidence" in out and "Traceback" not in out


# ---------------------------------------------------------------- on the native models (the cache interface;
# the fixtures native and batch: conftest.py)

def _run(sampler, lm, batch, hints: bool, seed: int = 3, **kw):
    prompts, mask, hint_ids, hint_mask = batch
    extra = dict(hint_ids=hint_ids, hint_mask=hint_mask) if hints else {}
    return sampler(lm, prompts, attention_mask=mask, generator=torch.Generator().manual_seed(seed), **extra, **kw)


@pytest.mark.parametrize("hints", [False, True], ids=["plain", "inpainting"])
@pytest.mark.parametrize("tau,cfg,noise", [(0.0, 0.0, "fast"), (1.2, 0.0, "exact"), (0.0, 0.5, "fast")],
                         ids=["greedy", "tau1.2", "cfg"])
def test_refresh_every_step_equals_the_exact_sampler(native, batch, hints, tau, cfg, noise):
    """With a full refresh at every step the cached sampler IS the exact one: token for token (LLaDA and Dream,
    batched with a left-padded row, plain and inpainting, sampling and guidance)."""
    kw = dict(gen_length=L, block_length=BL, steps=STEPS, temperature=tau, cfg_scale=cfg, noise=noise)
    exact = _run(low_confidence(**kw), native, batch, hints)
    cached = _run(dual_cache(**kw, refresh="step"), native, batch, hints)
    assert torch.equal(cached.sequences, exact.sequences) and cached.nfe == exact.nfe
    assert len(set(exact.completions.flatten().tolist())) > 5  # diverse tokens: not a vacuous comparison


class _Spy:
    """Records the adapter's cache calls: each refresh (input, positions, the cache) and each window step."""

    def __init__(self, lm, monkeypatch):
        self.refreshes, self.windows = [], []
        refresh, logits = lm.logits_and_cache, lm.logits

        def spy_refresh(x, mask=None, positions=None, rows=None):
            out, cache = refresh(x, mask, positions=positions, rows=rows)
            self.refreshes.append((x.clone(), positions, cache))
            return out, cache

        def spy_logits(x, mask=None, positions=None, kv_cache=None, rows=None):
            if kv_cache is not None:
                self.windows.append((positions, kv_cache))
            return logits(x, mask, positions=positions, kv_cache=kv_cache, rows=rows)

        monkeypatch.setattr(lm, "logits_and_cache", spy_refresh)
        monkeypatch.setattr(lm, "logits", spy_logits)


def test_cache_refreshed_once_per_block_from_the_finished_previous_block(native, batch, monkeypatch):
    """Cache invalidation at block boundaries: one full forward at each block's first step, from the sequence as
    the previous block left it; the block's other steps read the cache of THIS block's refresh and run the
    network on the block only (the adapter's window: the block, one position more for a shifted model)."""
    prompts, mask, hint_ids, hint_mask = batch
    hint_mask = hint_mask.clone()
    hint_mask[:, 3 * BL:] = True  # block 3 is all hints: skipped, no refresh, no forward
    seqs, widths = [], []
    spy = _Spy(native, monkeypatch)
    original = native.network.forward

    def forward(*a, **k):
        widths.append((k["input_ids"].shape[1], k.get("window_start")))
        return original(*a, **k)

    monkeypatch.setattr(native.network, "forward", forward)
    out = dual_cache(gen_length=L, block_length=BL, steps=STEPS)(
        native, prompts, attention_mask=mask, hint_ids=hint_ids, hint_mask=hint_mask,
        on_step=lambda info: seqs.append((info.block, info.step, info.sequences.clone())))
    plen, blocks = prompts.shape[1], [0, 1, 2]
    assert len(spy.refreshes) == len(blocks) and out.nfe == 3 * STEPS // (L // BL)
    for b, (x, positions, _) in zip(blocks, spy.refreshes):
        assert positions == slice(plen + b * BL, plen + (b + 1) * BL)
        before = seqs[[i for i, (blk, _, _) in enumerate(seqs) if blk == b][0] - 1][2] if b else None
        if before is not None:  # the refresh sees the previous block's final tokens (and the hints after it)
            assert torch.equal(x, before)
    steps_per_block = STEPS // (L // BL)
    assert len(spy.windows) == len(blocks) * (steps_per_block - 1)
    for i, (positions, cache) in enumerate(spy.windows):
        b = i // (steps_per_block - 1)
        assert positions == slice(plen + b * BL, plen + (b + 1) * BL) and cache is spy.refreshes[b][2]
    shift = native.logits_shift
    full = [w for w in widths if w[1] is None]
    window = [w for w in widths if w[1] is not None]
    assert all(w == plen + L for w, _ in full) and len(full) == len(blocks)
    assert all(w == BL + shift for w, _ in window) and len(window) == len(spy.windows)


@pytest.mark.parametrize("threshold", [None, 0.5])
def test_hints_never_overwritten_and_all_masks_filled(native, batch, threshold):
    prompts, mask, hint_ids, hint_mask = batch
    moved = []
    cfg = 0.5 if threshold is None else 0.0  # guidance: conditional and unconditional caches side by side
    out = dual_cache(gen_length=L, block_length=BL, steps=STEPS, temperature=1.2, threshold=threshold, cfg_scale=cfg)(
        native, prompts, attention_mask=mask, hint_ids=hint_ids, hint_mask=hint_mask,
        generator=torch.Generator().manual_seed(0), on_step=lambda info: moved.append(info.transferred.clone()))
    plen = prompts.shape[1]
    assert torch.equal(out.completions[hint_mask], hint_ids[hint_mask])
    assert torch.equal(out.sequences[:, :plen], prompts) and torch.equal(out.hint_mask, hint_mask)
    assert not any(m[:, plen:][hint_mask].any() or m[:, :plen].any() for m in moved)
    assert not (out.completions == native.mask_id).any()
    if threshold is not None:
        assert out.nfe == len(moved) and out.nfe <= L - int(hint_mask.sum(1).min())


def test_eos_early_exit(native, batch, monkeypatch):
    """IGPO's early exit: once every row's block is all EOS the remaining masks become EOS (hints kept)."""
    prompts, mask, hint_ids, hint_mask = batch
    refresh, logits = native.logits_and_cache, native.logits

    def biased(out):
        out = out.clone()
        out[..., native.eos_id] += 100.0
        return out

    def refresh_biased(*a, **k):
        out, cache = refresh(*a, **k)
        return biased(out), cache

    monkeypatch.setattr(native, "logits_and_cache", refresh_biased)
    monkeypatch.setattr(native, "logits", lambda *a, **k: biased(logits(*a, **k)))
    out = dual_cache(gen_length=L, block_length=BL, steps=STEPS, eos_early_exit=True)(
        native, prompts, attention_mask=mask, hint_ids=hint_ids, hint_mask=hint_mask)
    assert out.early_exit and out.nfe == STEPS // (L // BL)
    assert bool((out.completions[~hint_mask] == native.eos_id).all())
    assert torch.equal(out.completions[hint_mask], hint_ids[hint_mask])


def test_left_padding_equals_alone(native, batch):
    """A left-padded row decodes as the same prompt alone (the cache carries the padding mask)."""
    prompts, mask, _, _ = batch
    s = dual_cache(gen_length=L, block_length=BL, steps=STEPS)
    together = s(native, prompts, attention_mask=mask)
    alone = s(native, prompts[:1, 5:])
    assert torch.equal(together.completions[:1], alone.completions)
