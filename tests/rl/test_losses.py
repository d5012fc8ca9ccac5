"""Clipped losses + k3 KL (paper Eq. 3, Eq. 5; spec sec. 5.5, invariants 16 and 18)."""

from __future__ import annotations

import math

import pytest
import torch

from igpo_kit.registry import get
from igpo_kit.rl.losses import gspo, gspo_official, token_clip

B, L = 4, 12
LOSSES = ["token_clip", "gspo", "gspo_official"]


def data(seed=0):
    g = torch.Generator().manual_seed(seed)
    logps = -torch.rand(B, L, generator=g) * 3
    old = logps + 0.3 * torch.randn(B, L, generator=g)
    ref = logps + 0.3 * torch.randn(B, L, generator=g)
    adv = torch.tensor([1.0, -0.5, 0.25, -0.75])
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[1, 8:] = False  # EOS padding outside the loss
    hint = torch.zeros(B, L, dtype=torch.bool)
    hint[0, 2:8] = True
    hint[2, 0:4] = True
    mask[0, [2, 3, 5, 7]] = False  # filtered hint tokens
    mask[2, [1, 2]] = False
    return logps, old, ref, adv, mask, hint


@pytest.mark.parametrize("name", LOSSES)
def test_ratio_one_at_first_inner_step_and_kl_zero_when_policy_is_ref(name):
    logps, _, _, adv, mask, hint = data()
    lp = logps.clone().requires_grad_(True)
    loss, stats = get("loss", name)()(lp, logps.clone(), logps.clone(), adv, mask, hint)
    assert stats["policy_ratio"] == pytest.approx(1.0) and stats["clip_fraction"] == 0.0
    assert stats["kl"] == 0.0 and stats["hint_tokens_policy_ratio"] == pytest.approx(1.0)
    assert math.isfinite(float(loss.detach()))


def test_kl_is_non_negative_and_matches_k3():
    logps, old, ref, adv, mask, hint = data(1)
    _, stats = token_clip()(logps, old, ref, adv, mask, hint)
    d = ref - logps
    k3 = torch.exp(d) - d - 1
    assert bool((k3 >= 0).all())
    assert stats["kl"] == pytest.approx(float(k3[mask].mean()), rel=1e-5)
    assert stats["kl"] > 0


def test_token_clip_value_sequence_and_token_normalisation():
    logps, old, ref, adv, mask, hint = data(2)
    beta, eps = 0.01, 0.2
    r = torch.exp(logps - old)
    a = adv[:, None]
    d = ref - logps
    term = -torch.minimum(r * a, r.clamp(1 - eps, 1 + eps) * a) + beta * (torch.exp(d) - d - 1)
    m = mask.float()
    seq = ((term * m).sum(1) / m.sum(1)).mean()  # Eq. 5: 1/G sum_i 1/L_i sum_k
    tok = (term * m).sum() / m.sum()
    assert float(token_clip()(logps, old, ref, adv, mask, hint)[0]) == pytest.approx(float(seq), rel=1e-5)
    assert float(token_clip(normalization="token")(logps, old, ref, adv, mask, hint)[0]) == pytest.approx(
        float(tok), rel=1e-5
    )


def test_gspo_sequence_ratio_over_kept_tokens():
    logps, old, ref, adv, mask, hint = data(3)
    s = torch.exp(((logps - old) * mask).sum(1) / mask.sum(1))
    loss, stats = gspo(kl_beta=0.0)(logps, old, None, adv, mask, hint)
    expected = (-torch.minimum(s * adv, s.clamp(0.8, 1.2) * adv)).mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    s_all = torch.exp((logps - old).mean(1))
    loss_off, _ = gspo_official(kl_beta=0.0)(logps, old, None, adv, mask, hint)
    per_tok = -torch.minimum(s_all * adv, s_all.clamp(0.8, 1.2) * adv)[:, None].expand(B, L)
    assert float(loss_off) == pytest.approx(float((per_tok * mask).sum() / mask.sum()), rel=1e-5)


def test_stats_split_hint_and_generated():
    logps, old, ref, adv, mask, hint = data(4)
    _, stats = token_clip()(logps, old, ref, adv, mask, hint)
    assert stats["n_hint_tokens"] == float((mask & hint).sum())
    assert stats["n_generated_tokens"] == float((mask & ~hint).sum())
    r = torch.exp(logps - old)
    assert stats["hint_tokens_policy_ratio"] == pytest.approx(float(r[mask & hint].mean()), rel=1e-5)
    assert stats["generated_tokens_policy_ratio"] == pytest.approx(float(r[mask & ~hint].mean()), rel=1e-5)
    a = adv[:, None].expand(B, L)
    clipped = ((r < 0.8) & (a < 0)) | ((r > 1.2) & (a > 0))
    assert stats["clip_fraction"] == pytest.approx(float(clipped[mask].float().mean()), rel=1e-5)
    assert stats["hint_tokens_clip_ratio"] == pytest.approx(float(clipped[mask & hint].float().mean()), rel=1e-5)
    assert 0.0 < stats["clip_fraction"] < 1.0


def _grad(loss_fn, logps, old, ref, adv, mask, hint):
    lp = logps.clone().requires_grad_(True)
    loss, _ = loss_fn(lp, old, ref, adv, mask, hint)
    loss.backward()
    return lp.grad


@pytest.mark.parametrize("normalization", ["sequence", "token"])
def test_token_level_zero_gradient_at_filtered_positions_invariant_18(normalization):
    logps, old, ref, adv, mask, hint = data(5)
    old = old.clone()
    old[~mask] = logps[~mask] - 80.0  # exp(80) overflows nothing: masked before the exponential
    grad = _grad(token_clip(normalization=normalization), logps, old, ref, adv, mask, hint)
    assert bool(torch.isfinite(grad).all())
    assert bool((grad[~mask] == 0).all())  # exactly zero
    assert float(grad[mask].abs().sum()) > 0
    grad_kept = _grad(gspo(), logps, old, ref, adv, mask, hint)
    assert bool((grad_kept[~mask] == 0).all())


def test_gspo_official_filtered_hints_still_get_gradient_invariant_18():
    logps, _, ref, adv, mask, hint = data(6)
    old = logps.clone()  # s_i = 1: inside the clip range, gradient flows through s_i
    grad = _grad(gspo_official(), logps, old, ref, adv, mask, hint)
    filtered_hints = hint & ~mask
    assert bool(filtered_hints.any())
    assert bool((grad[filtered_hints] != 0).all())


def test_end_to_end_gradient_wrt_logits(tiny_lm_factory):
    """tiny model -> mean-field logps -> entropy filter -> loss: per-position logit gradients (invariant 18)."""
    model = tiny_lm_factory(seed=1)
    p, length, b = 6, 10, 2
    g = torch.Generator().manual_seed(0)
    seqs = torch.randint(8, 90, (b, p + length), generator=g)
    hint = torch.zeros(b, length, dtype=torch.bool)
    hint[0, 1:9] = True
    est = get("logprob_estimator", "mean_field")()
    with torch.no_grad():
        old = est(model, seqs, p)
    keep = get("entropy_filter", "top_fraction")()(old.entropies, hint, torch.ones_like(hint))
    filtered = hint & ~keep
    assert int(filtered.sum()) == 8 - 1
    adv = torch.tensor([1.0, -1.0])

    def logit_grad(loss_fn):
        model.network.zero_grad()
        x = seqs.clone()
        x[:, p:] = model.mask_id
        logits = model.logits(x, positions=slice(p, p + length)).float()
        logits.retain_grad()
        logps = torch.log_softmax(logits, -1).gather(-1, seqs[:, p:, None]).squeeze(-1)
        assert torch.allclose(logps.detach(), old.logps, atol=1e-6)  # ratio = 1 at the first inner step
        loss, stats = loss_fn(logps, old.logps, old.logps, adv, keep, hint)
        loss.backward()
        return logits.grad.abs().sum(-1), stats

    g_tok, stats = logit_grad(token_clip())
    assert stats["policy_ratio"] == pytest.approx(1.0) and stats["kl"] == pytest.approx(0.0, abs=1e-9)
    assert bool((g_tok[filtered] == 0).all()) and bool((g_tok[keep] > 0).all())
    g_off, _ = logit_grad(gspo_official())
    assert bool((g_off[filtered] > 0).all())


@pytest.mark.parametrize("name", LOSSES)
def test_zero_safe_when_nothing_is_kept(name):
    logps, old, ref, adv, _, hint = data(7)
    mask = torch.zeros(B, L, dtype=torch.bool)
    mask[0] = True
    mask_none = torch.zeros(B, L, dtype=torch.bool)
    lp = logps.clone().requires_grad_(True)
    loss, stats = get("loss", name)()(lp, old, ref, adv, mask_none, hint)
    loss.backward()
    if name != "gspo_official":
        assert float(loss.detach()) == 0.0 and bool((lp.grad == 0).all())
    assert math.isfinite(float(loss.detach())) and bool(torch.isfinite(lp.grad).all())
    assert stats["n_hint_tokens"] == 0 and stats["n_generated_tokens"] == 0
    # rows without kept tokens contribute 0 (sequence normalisation averages over all B rows)
    loss1, _ = token_clip(kl_beta=0.0)(logps, logps, None, adv, mask, hint)
    assert float(loss1) == pytest.approx(-1.0 / B)


def test_invalid_options():
    with pytest.raises(ValueError):
        token_clip(normalization="batch")
    with pytest.raises(ValueError):
        gspo(ratio_average="some")
    with pytest.raises(ValueError):
        token_clip(clip_low=-0.1)
