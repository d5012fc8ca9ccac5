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


_PEAK_SCRIPT = r"""
import json, torch
from transformers import GemmaConfig, GemmaForCausalLM
from igpo_kit.models.base import DiffusionLM
from igpo_kit.rl.logprobs import in_micro_batches, mean_field

torch.manual_seed(0)
V, P, L = 32768, 8, 64  # one row's float32 logits: 8 MiB
config = GemmaConfig(vocab_size=V, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                     head_dim=8, intermediate_size=32, use_bidirectional_attention=True, tie_word_embeddings=False,
                     attn_implementation="sdpa")
lm = DiffusionLM(network=GemmaForCausalLM(config).eval(), tokenizer=None, mask_id=3, eos_id=1, logits_slice=True)
seqs = torch.randint(10, V, (16, P + L))
# VmHWM: this process image's own peak RSS (ru_maxrss would carry the forking parent's peak across exec)
peak = lambda: 1024 * int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")))
out, ents = {}, {}
with torch.no_grad():
    in_micro_batches(mean_field(), lm, seqs[:2], P, None, 2)  # warm-up: one micro-batch of 2 rows
    base = peak()
    for name, rows, mb in (("2", 2, 2), ("16/2", 16, 2), ("16/16", 16, 16)):
        stats = in_micro_batches(mean_field(), lm, seqs[:rows], P, None, mb)
        out[name] = (peak() - base) / 2**20
        ents[name] = stats
assert torch.equal(ents["16/2"].logps, ents["16/16"].logps)
assert torch.allclose(ents["16/2"].entropies, ents["16/16"].entropies, atol=1e-5)
print(json.dumps(out))
"""


def test_old_and_ref_passes_peak_memory_does_not_grow_with_rows():
    """pi_old / pi_ref / entropy passes in micro-batches: the peak resident memory of 16 rows in micro-batches of 2
    is that of 2 rows (V = 32768, L = 64: 8 MiB of float32 logits per row), while 16 rows at once (what the loop did
    before) raise it by far more than the 8 rows' logits the test tolerates; measured in a fresh process."""
    import json
    import subprocess
    import sys

    # large buffers always from mmap, returned to the system when freed: glibc's adaptive threshold would otherwise
    # serve some from a heap that keeps freed pages, and the peak would depend on the allocation history
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "131072"}
    res = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    mib = json.loads(res.stdout.strip().splitlines()[-1])
    assert mib["16/16"] > 100, mib  # the measurement sees a full batch of logits...
    assert mib["16/2"] < 16, mib  # ...and micro-batches of 2 rows stay at the 2-row peak (+ < 2 rows of logits)


def test_token_entropy_matches_the_direct_formula():
    from igpo_kit.rl.logprobs import token_entropy

    logits = torch.randn(3, 5, 11, generator=torch.Generator().manual_seed(0)) * 4
    p = torch.softmax(logits, -1)
    assert torch.allclose(token_entropy(logits), -(p * p.log()).sum(-1), atol=1e-6)
    assert torch.allclose(token_entropy(logits.bfloat16()), token_entropy(logits.bfloat16().float()))
