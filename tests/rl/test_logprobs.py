"""Mean-field log-probs and entropies (spec sec. 5.1-5.2, invariant 15)."""

from __future__ import annotations

import pytest
import torch

from igpo_kit.registry import get
from igpo_kit.rl.logprobs import completion_mask, masked_input

P, LEN, B = 12, 16, 3


def batch(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    prompt = model.chat_prompt([{"role": "user", "content": "What is 2+3?"}])[-P:]
    vocab_lo = 8  # ordinary characters
    completion = torch.randint(vocab_lo, model.vocab_size, (B, LEN), generator=g)
    completion[completion == model.mask_id] = vocab_lo
    seqs = torch.cat([torch.tensor(prompt).expand(B, P), completion], dim=1)
    return seqs


class Spy:
    """A DiffusionLM stand-in that records the inputs and keeps the logits' gradient."""

    def __init__(self, model):
        self.model, self.mask_id, self.inputs, self.out = model, model.mask_id, [], None

    def logits(self, input_ids, attention_mask=None, positions=None):
        self.inputs.append(input_ids.clone())
        self.out = self.model.logits(input_ids, attention_mask=attention_mask, positions=positions)
        if self.out.requires_grad:
            self.out.retain_grad()
        return self.out


def test_full_masking_and_hand_computed_logps(tiny_lm):
    seqs = batch(tiny_lm)
    est = get("logprob_estimator", "mean_field")()
    spy = Spy(tiny_lm)
    with torch.no_grad():
        stats = est(spy, seqs, P)
    x = spy.inputs[0]
    assert bool((x[:, P:] == tiny_lm.mask_id).all())  # every completion position is M
    assert torch.equal(x[:, :P], seqs[:, :P])  # no prompt position is
    assert stats.logps.shape == stats.entropies.shape == (B, LEN)
    assert stats.logps.dtype == stats.entropies.dtype == torch.float32
    # by hand: log_softmax(f([q; M^L]))[y]
    q_masked = torch.cat([seqs[:, :P], torch.full((B, LEN), tiny_lm.mask_id)], dim=1)
    with torch.no_grad():
        logits = tiny_lm.network(input_ids=q_masked).logits[:, P:].float()
    logits[..., tiny_lm.mask_id] = torch.finfo(torch.float32).min  # tiny model: suppress_mask
    logp = torch.log_softmax(logits, dim=-1)
    expected = logp.gather(-1, seqs[:, P:, None]).squeeze(-1)
    assert torch.allclose(stats.logps, expected, atol=1e-5)
    ent = -(logp.exp() * logp).nan_to_num(0.0).sum(-1)
    assert torch.allclose(stats.entropies, ent, atol=1e-4)
    assert bool((stats.entropies >= 0).all())


def test_identical_across_calls(tiny_lm):
    seqs = batch(tiny_lm, seed=1)
    est = get("logprob_estimator", "mean_field")()
    with torch.no_grad():
        a = est(tiny_lm, seqs, P, generator=torch.Generator().manual_seed(1))
        b = est(tiny_lm, seqs, P, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a.logps, b.logps) and torch.equal(a.entropies, b.entropies)


def test_logps_are_mean_field_independent_of_completion_context(tiny_lm):
    """Each token is scored with the whole completion masked: changing other completion tokens changes nothing."""
    seqs = batch(tiny_lm, seed=2)
    other = seqs.clone()
    other[:, P + 1 :] = seqs[:, P + 1 :].flip(0)
    est = get("logprob_estimator", "mean_field")()
    with torch.no_grad():
        a, b = est(tiny_lm, seqs, P), est(tiny_lm, other, P)
    assert torch.equal(a.logps[:, 0], b.logps[:, 0])
    assert torch.equal(a.entropies, b.entropies)


def test_gradient_flows_under_grad(tiny_lm_factory):
    model = tiny_lm_factory(seed=1)
    seqs = batch(model, seed=3)
    spy = Spy(model)
    stats = get("logprob_estimator", "mean_field")()(spy, seqs, P, compute_entropy=False)
    assert stats.entropies is None and stats.logps.requires_grad
    stats.logps[:, 3].sum().backward()
    grads = [p.grad for p in model.network.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    assert spy.out.shape == (B, LEN, model.vocab_size)  # logits only for the completion positions
    per_pos = spy.out.grad.abs().sum(-1)
    assert bool((per_pos[:, 3] > 0).all()) and float(per_pos[:, :3].sum()) == 0.0


def test_prompt_masking_uses_the_generator(tiny_lm):
    seqs = batch(tiny_lm)
    x1 = masked_input(seqs, P, tiny_lm.mask_id, 0.5, generator=torch.Generator().manual_seed(0))
    x2 = masked_input(seqs, P, tiny_lm.mask_id, 0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x1, x2)
    assert 0 < int((x1[:, :P] == tiny_lm.mask_id).sum()) < B * P
    attn = torch.ones_like(seqs)
    attn[:, :4] = 0
    x3 = masked_input(seqs, P, tiny_lm.mask_id, 0.99, attention_mask=attn, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x3[:, :4], seqs[:, :4])  # padding never masked
    with pytest.raises(ValueError):
        get("logprob_estimator", "mean_field")(prompt_mask_prob=0.2)(tiny_lm, seqs, P)


def test_completion_mask():
    eos = 1
    c = torch.tensor([[5, 6, 1, 1, 1], [5, 6, 7, 8, 9], [1, 1, 1, 1, 1], [5, 1, 6, 1, 7]])
    expected = torch.tensor(
        [
            [True, True, True, False, False],
            [True, True, True, True, True],
            [True, False, False, False, False],
            [True, True, False, False, False],
        ]
    )
    assert torch.equal(completion_mask(c, eos), expected)
