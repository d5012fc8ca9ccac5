"""Fixtures of the sampler tests: a context-dependent toy dLLM on top of ``tiny_lm``.

A randomly initialised tiny transformer predicts the same token at every masked position (all inputs look alike),
which would make token-equality tests vacuous. ``ContextLM`` adds to the network's logits a fixed random function
of the (real, i.e. padding-relative) position and of the neighbouring tokens, so greedy decoding gives diverse
tokens that depend on what was committed before (commit order matters) and on tokens to the right (hints).
It shares ``tiny_lm``'s network (never modified) and honours ``positions`` slicing and ``rows`` like the real adapter.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import pytest
import torch

from igpo_kit.models.base import DiffusionLM
from igpo_kit.models.native import select_rows


@dataclass
class ContextLM(DiffusionLM):
    """``logits = network_scale * f(x) + pos[r] + prev[x[t-1]] + next[x[t+1]] + ctx[sum of visible ids % V]``
    (``+ eos_bias`` at EOS)."""

    pos_table: torch.Tensor | None = None  # [T_max, V]
    prev_table: torch.Tensor | None = None  # [V, V]
    next_table: torch.Tensor | None = None  # [V, V]
    ctx_table: torch.Tensor | None = None  # [V, V], indexed by a hash of all visible tokens
    network_scale: float = 1.0
    eos_bias: float = 0.0
    calls: int = 0

    def logits(self, input_ids, attention_mask=None, positions=None, rows=None):
        self.calls += 1
        b, t = input_ids.shape
        if self.network_scale:
            base = super().logits(input_ids, attention_mask, positions) * self.network_scale
        else:
            n = len(range(t)[positions]) if positions is not None else t
            base = torch.zeros(b, n, self.pos_table.shape[1])
        idx = torch.arange(t)
        if positions is not None:
            idx = idx[positions]
        real = torch.ones(b, t, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        rel = (real.long().cumsum(1) - 1).clamp(min=0)  # position relative to the first real token
        pad = self.pad_id
        prev_ok = (idx - 1 >= 0)[None, :] & real[:, (idx - 1).clamp(min=0)]
        prev = torch.where(prev_ok, input_ids[:, (idx - 1).clamp(min=0)], pad)
        nxt_ok = (idx + 1 < t)[None, :].expand(b, -1)
        nxt = torch.where(nxt_ok, input_ids[:, (idx + 1).clamp(max=t - 1)], pad)
        visible = real & (input_ids != self.mask_id)
        ctx = (input_ids * visible).sum(1) % self.ctx_table.shape[0]  # [B]: global, bidirectional context
        extra = (self.pos_table[rel[:, idx]] + self.prev_table[prev] + self.next_table[nxt]
                 + self.ctx_table[ctx][:, None, :])
        out = base + extra.to(base.dtype)
        if self.eos_bias:
            out[..., self.eos_id] += self.eos_bias
        out[..., self.mask_id] = torch.finfo(out.dtype).min
        return out if rows is None else select_rows(out, rows)


def make_context_lm(tiny_lm: DiffusionLM, *, seed: int = 0, scale: float = 2.0, network_scale: float = 1.0,
                    eos_bias: float = 0.0, max_len: int = 512) -> ContextLM:
    g = torch.Generator().manual_seed(seed)
    v = tiny_lm.vocab_size
    base = {f.name: getattr(tiny_lm, f.name) for f in fields(DiffusionLM)}
    return ContextLM(
        **base,
        pos_table=torch.randn(max_len, v, generator=g) * scale,
        prev_table=torch.randn(v, v, generator=g) * scale,
        next_table=torch.randn(v, v, generator=g) * scale,
        ctx_table=torch.randn(v, v, generator=g) * scale / 2,
        network_scale=network_scale,
        eos_bias=eos_bias,
    )


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: these tiny workloads are 10-50x slower with 2 threads on a loaded machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def toy_lm(tiny_lm):
    """Context-dependent toy dLLM sharing ``tiny_lm``'s network."""
    return make_context_lm(tiny_lm)


@pytest.fixture(scope="session")
def toy_factory(tiny_lm):
    def factory(**kwargs):
        return make_context_lm(tiny_lm, **kwargs)

    return factory


@pytest.fixture(scope="session")
def prompts():
    """``[3, 12]`` random prompt ids (ordinary characters)."""
    g = torch.Generator().manual_seed(123)
    return torch.randint(8, 104, (3, 12), generator=g)


def make_hints(batch: int, gen_length: int, *, seed: int = 7, frac: float = 0.3, vocab=(8, 104)):
    """Random hints ``(hint_ids [B, L], hint_mask [B, L])`` kept off the last 30% of the region."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(batch, gen_length, generator=g) < frac
    mask[:, int(gen_length * 0.7):] = False
    ids = torch.randint(vocab[0], vocab[1], (batch, gen_length), generator=g)
    return ids, mask


@pytest.fixture(scope="session")
def hints_factory():
    return make_hints


# ---------------------------------------------------------------- the native models (LM head on rows, K/V cache)

def _sharpen(lm, seed: int = 0):
    """Re-draw the matrices at a larger scale so that predictions depend on the context (random tiny models at
    the default init predict one token everywhere, which would make token-equality tests vacuous)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in lm.network.named_parameters():
            if p.dim() == 2:
                scale = 1.0 if ("wte" in name or "embed" in name) else 1.5 / p.shape[1] ** 0.5
                p.copy_(torch.randn(p.shape, generator=g) * scale)
    return lm


@pytest.fixture(scope="module", params=["llada", "dream"])
def native(request):
    from igpo_kit.models.tiny import tiny

    return _sharpen(tiny(architecture=request.param))


@pytest.fixture(scope="module")
def batch():
    """``[3, 20]`` prompts, row 0 left-padded by 5, and hints ``[3, 32]`` in blocks 1 and 2 of 8 positions (row 2:
    none), for the native-model tests (``gen_length`` 32)."""
    g = torch.Generator().manual_seed(5)
    prompts = torch.randint(10, 100, (3, 20), generator=g)
    mask = torch.ones_like(prompts)
    mask[0, :5] = 0
    hint_mask = torch.zeros(3, 32, dtype=torch.bool)
    hint_mask[0, [9, 10, 17]] = True
    hint_mask[1, [8, 20, 21, 22]] = True
    hint_ids = torch.randint(10, 100, (3, 32), generator=g)
    return prompts, mask, hint_ids, hint_mask
