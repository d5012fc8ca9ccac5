"""The native classes' key/value cache for block decoding (refresh == uncached, window steps, the adapter's shift)
and gradient checkpointing (same loss and gradients)."""

from __future__ import annotations

import copy

import pytest
import torch

from igpo_kit.models.base import DiffusionLM
from igpo_kit.models.dream import DreamModel
from igpo_kit.models.llada import LLaDAModelLM


@pytest.fixture(scope="module", params=["llada", "dream"])
def native(request):
    folder = request.getfixturevalue(f"{request.param}_dir")
    cls = LLaDAModelLM if request.param == "llada" else DreamModel
    return cls.from_pretrained(str(folder), dtype=torch.float32).eval()


def _batch(length=24):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 120000, (2, length), generator=g)
    mask = torch.ones(2, length, dtype=torch.long)
    mask[0, :6] = 0
    return x, mask


@torch.no_grad()
def test_window_step_after_a_full_refresh_reproduces_the_uncached_logits(native):
    x, mask = _batch()
    uncached = native(input_ids=x, attention_mask=mask).logits
    out = native(input_ids=x, attention_mask=mask, use_cache=True)
    torch.testing.assert_close(out.logits, uncached, rtol=0, atol=0)
    cache = out.kv_cache
    assert len(cache.keys) == native.config.num_hidden_layers and cache.length == x.shape[1]
    for start, stop in [(8, 16), (16, 24), (0, 4)]:
        step = native(input_ids=x[:, start:stop], attention_mask=mask, kv_cache=cache, window_start=start).logits
        torch.testing.assert_close(step, uncached[:, start:stop], rtol=0, atol=1e-6)


@torch.no_grad()
def test_window_step_reads_the_cache_and_writes_it_only_when_asked(native):
    x, mask = _batch()
    cache = native(input_ids=x, attention_mask=mask, use_cache=True).kv_cache
    before = [k.clone() for k in cache.keys]
    y = x.clone()
    y[:, 8:16] = 7  # new tokens inside the window
    stepped = native(input_ids=y[:, 8:16], attention_mask=mask, kv_cache=cache, window_start=8).logits
    assert all(torch.equal(a, b) for a, b in zip(before, cache.keys))  # untouched
    # outside the window the stale cache is what the window attends to: different from a full forward on y
    assert not torch.allclose(stepped, native(input_ids=y, attention_mask=mask).logits[:, 8:16], atol=1e-4)
    native(input_ids=y[:, 8:16], attention_mask=mask, kv_cache=cache, window_start=8, update_cache=True)
    fresh = native(input_ids=y, attention_mask=mask, use_cache=True).kv_cache
    torch.testing.assert_close(cache.keys[0][:, :, 8:16], fresh.keys[0][:, :, 8:16], rtol=0, atol=1e-6)
    torch.testing.assert_close(cache.keys[0][:, :, :8], before[0][:, :, :8], rtol=0, atol=0)
    with pytest.raises(ValueError, match="does not fit"):
        native(input_ids=y[:, 20:], attention_mask=mask, kv_cache=cache, window_start=22)


@torch.no_grad()
@pytest.mark.parametrize("shift", [0, 1])
def test_adapter_cached_logits_score_token_i_at_position_i(native, shift):
    lm = DiffusionLM(network=native, tokenizer=None, mask_id=5, eos_id=6, logits_slice=True, kv_cache=True,
                     logits_shift=shift)
    x, mask = _batch()
    full = lm.logits(x, mask)
    raw = native(input_ids=x, attention_mask=mask).logits
    expected = torch.cat([raw[:, :1], raw[:, :-1]], dim=1) if shift else raw  # Dream's own sampler convention
    torch.testing.assert_close(full, expected, rtol=0, atol=0)
    block = slice(8, 16)
    torch.testing.assert_close(lm.logits(x, mask, positions=block), expected[:, block], rtol=0, atol=1e-6)
    first, cache = lm.logits_and_cache(x, mask, positions=block)
    torch.testing.assert_close(first, expected[:, block], rtol=0, atol=1e-6)
    cached = lm.logits(x, mask, positions=block, kv_cache=cache)
    torch.testing.assert_close(cached, expected[:, block], rtol=0, atol=1e-6)


def _loss_and_grads(model, x, mask):
    model.zero_grad()
    logits = model(input_ids=x, attention_mask=mask, logits_to_keep=torch.arange(10, 24)).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 10:].reshape(-1))
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(native):
    x, mask = _batch()
    plain = copy.deepcopy(native).train()
    ckpt = copy.deepcopy(native).train()
    ckpt.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert ckpt.is_gradient_checkpointing
    calls, block = [], ckpt.blocks()[0]
    forward = block.forward
    block.forward = lambda *a, **k: calls.append(1) or forward(*a, **k)
    loss_a, grads_a = _loss_and_grads(plain, x, mask)
    loss_b, grads_b = _loss_and_grads(ckpt, x, mask)
    assert len(calls) == 2  # the block ran again in the backward pass: activations were not kept
    torch.testing.assert_close(loss_a, loss_b, rtol=0, atol=1e-6)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) == len(list(native.parameters()))
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-5, atol=1e-7)
