"""NELBO (paper Eq. 1): masking only in the answer, rate t', 1/t' weighting, normalisations, gradient path."""

from __future__ import annotations

import math

import pytest
import torch

from igpo_kit.sft.nelbo import forward_process, nelbo_loss, skip_forward_process

MASK = 7
EOS = 1
V = 11


class StubModel:
    """``logits`` are a leaf tensor independent of the input, so its gradient shows which predictions are trained."""

    mask_id = MASK

    def __init__(self, B: int, T: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.table = torch.randn(B, T, V, generator=g).requires_grad_(True)

    def logits(self, input_ids, attention_mask=None, positions=None):
        out = self.table
        return out if positions is None else out[:, positions]


def _batch(B=3, T=20, prompt=(4, 6, 5), answer=(8, 5, 10)):
    ids = torch.full((B, T), EOS, dtype=torch.long)
    answer_mask = torch.zeros(B, T, dtype=torch.bool)
    g = torch.Generator().manual_seed(123)
    for i in range(B):
        ids[i, : prompt[i]] = torch.randint(2, 6, (prompt[i],), generator=g)
        ids[i, prompt[i] : prompt[i] + answer[i]] = torch.randint(8, V, (answer[i],), generator=g)
        answer_mask[i, prompt[i] :] = True  # answer + EOS padding
    return ids, torch.tensor(prompt), answer_mask


def test_prompt_never_masked_and_masking_rate():
    B, T, P = 16, 4000, 100
    ids = torch.randint(8, V, (B, T))
    prompt_lengths = torch.full((B,), P)
    answer_mask = torch.zeros(B, T, dtype=torch.bool)
    answer_mask[:, P:] = True
    noisy, masked, p_mask = forward_process(ids, prompt_lengths, answer_mask, MASK, torch.Generator().manual_seed(0))
    assert not masked[:, :P].any()
    assert torch.equal(noisy[:, :P], ids[:, :P])
    assert torch.equal(noisy == MASK, masked)
    assert torch.equal(noisy[~masked], ids[~masked])
    assert ((p_mask >= 1e-3) & (p_mask <= 1.0)).all()
    n = T - P
    rate = masked[:, P:].float().mean(dim=1)
    sd = torch.sqrt(p_mask * (1 - p_mask) / n)
    assert ((rate - p_mask).abs() <= 5 * sd + 1e-3).all()


def test_t_prime_formula():
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    ids, pl, am = _batch()
    _, _, p_mask = forward_process(ids, pl, am, MASK, g1, eps=0.1)
    t = torch.rand(ids.shape[0], generator=g2)
    assert torch.allclose(p_mask, 0.9 * t + 0.1)


@pytest.mark.parametrize("normalization", ["answer_tokens", "batch_tokens", "none"])
def test_gradient_only_through_masked_answer_predictions(normalization):
    ids, pl, am = _batch()
    B, T = ids.shape
    model = StubModel(B, T)
    gen = torch.Generator().manual_seed(3)
    _, masked, p_mask = forward_process(ids, pl, am, MASK, torch.Generator().manual_seed(3))
    loss, stats = nelbo_loss(model, ids, pl, am, gen, normalization=normalization)
    assert torch.isfinite(loss)
    loss.backward()
    touched = model.table.grad.abs().sum(-1) > 0
    assert torch.equal(touched, masked)
    assert not touched[torch.arange(T)[None, :] < pl[:, None]].any()
    # manual value of the objective
    logp = torch.log_softmax(model.table.detach(), -1).gather(-1, ids[..., None])[..., 0]
    per_seq = (-(logp * masked) / p_mask[:, None]).sum(1)
    n_ans = am.sum(1).float()
    expected = {
        "answer_tokens": (per_seq / n_ans).mean(),
        "batch_tokens": per_seq.sum() / n_ans.sum(),
        "none": per_seq.mean(),
    }[normalization]
    assert torch.allclose(loss.detach(), expected, rtol=1e-5)
    assert stats["answer_tokens"] == float(n_ans.sum())
    assert stats["masked_tokens"] == float(masked.sum())


def test_eos_padding_positions_are_targets():
    ids, pl, am = _batch()
    B, T = ids.shape
    eos_pad = am & (ids == EOS)
    assert eos_pad.any()
    hit = torch.zeros_like(eos_pad)
    for seed in range(10):
        model = StubModel(B, T)
        loss, _ = nelbo_loss(model, ids, pl, am, torch.Generator().manual_seed(seed))
        loss.backward()
        hit |= model.table.grad.abs().sum(-1) > 0
    assert (hit & eos_pad).any()


def test_determinism_and_no_global_rng(tiny_lm):
    ids, pl, am = _batch(T=24)
    ids = ids.clamp(max=tiny_lm.vocab_size - 1)
    ids[ids == tiny_lm.mask_id] = 20  # no mask token in the clean input
    state = torch.random.get_rng_state()
    l1, s1 = nelbo_loss(tiny_lm, ids, pl, am, torch.Generator().manual_seed(9))
    l2, s2 = nelbo_loss(tiny_lm, ids, pl, am, torch.Generator().manual_seed(9))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(l1, l2) and s1 == s2
    assert math.isfinite(l1.item()) and l1.item() > 0
    # a random model's per-token NLL bound is about log V weighted by 1/t'
    assert s1["nll"] == pytest.approx(math.log(tiny_lm.vocab_size), rel=0.5)


def test_real_model_gradient(tiny_lm_factory):
    model = tiny_lm_factory(seed=1)
    ids, pl, am = _batch(T=24)
    ids = ids.clamp(max=model.vocab_size - 1)
    loss, _ = nelbo_loss(model, ids, pl, am, torch.Generator().manual_seed(0))
    loss.backward()
    grads = [p.grad for p in model.network.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_bad_normalization():
    ids, pl, am = _batch()
    with pytest.raises(ValueError, match="normalization"):
        nelbo_loss(StubModel(*ids.shape), ids, pl, am, torch.Generator(), normalization="tokens")


def test_skip_forward_process_advances_the_generator_like_forward_process():
    """Data-parallel SFT skips the other ranks' micro-batches with it: the next draws must be the same."""
    ids, prompt, answer_mask = _batch()
    g_run, g_skip = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    forward_process(ids, prompt, answer_mask, MASK, g_run)
    skip_forward_process(ids.shape[0], ids.shape[1], g_skip)
    assert torch.equal(g_run.get_state(), g_skip.get_state())
    a = forward_process(ids, prompt, answer_mask, MASK, g_run)
    b = forward_process(ids, prompt, answer_mask, MASK, g_skip)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
