"""Hint chunkers: spec invariants 8 (count), 9 (placement), 10 (eta -> 0), 11 (answer exclusion); Eq. 4."""

from __future__ import annotations

import math

import pytest
import torch

from igpo_kit.hints.answer_span import TraceTokens, tokenize_trace
from igpo_kit.hints.chunking import (
    HintPlan,
    paper,
    partition,
    sample_hint_ratios,
    spacing_scaled,
    stack_plans,
)
from igpo_kit.registry import get

L = 256


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def trace_of(n: int, answer: tuple[int, int] | None = None) -> TraceTokens:
    return TraceTokens(ids=list(range(100, 100 + n)), answer_span=answer)


def check_chunks(plan: HintPlan, end: int, s_min: int, s_max: int) -> None:
    """Contiguous chunks from 0, lengths in [s_min, s_max], unchunked tail < s_min (invariant 8)."""
    pos = 0
    for a, b in plan.chunks:
        assert a == pos and s_min <= b - a <= s_max
        pos = b
    assert end - pos < s_min


# ---------------------------------------------------------------- invariant 8: hint count, chunk lengths, tail


@pytest.mark.parametrize("n", [0, 3, 5, 57, 180, 400])
@pytest.mark.parametrize("eta", [0.0, 0.2, 0.37, 0.5, 0.6, 1.0])
def test_paper_reveals_floor_eta_n(n, eta):
    chunker = paper()
    for seed in range(5):
        plan = chunker(trace_of(n), L, eta, gen(seed))
        check_chunks(plan, min(n, L), 5, 10)
        assert plan.n_revealed == math.floor(eta * plan.n_chunks + 1e-9) == len(plan.revealed)
        assert int(plan.hint_mask.sum()) == sum(plan.chunks[j][1] - plan.chunks[j][0] for j in plan.revealed)


@pytest.mark.parametrize("n", [3, 5, 57, 180, 400])
@pytest.mark.parametrize("eta", [0.2, 0.37, 0.5, 0.6, 1.0])
def test_spacing_scaled_reveals_ceil_eta_n_plus_last(n, eta):
    chunker = spacing_scaled()
    for seed in range(5):
        plan = chunker(trace_of(n), L, eta, gen(seed))
        check_chunks(plan, min(n, L - 30), 5, 10)
        big_n = plan.n_chunks
        assert plan.n_selected == big_n - int(big_n * (1 - eta)) == math.ceil(eta * big_n - 1e-9)
        if big_n:
            assert big_n - 1 in plan.revealed  # the last chunk always
            assert plan.n_revealed in (plan.n_selected, plan.n_selected + 1)


def test_chunk_sizes_cover_the_whole_range():
    sizes = set()
    for seed in range(20):
        sizes |= {b - a for a, b in partition(0, 200, 4, 8, gen(seed))}
    assert sizes == set(range(4, 9))


def test_custom_chunk_sizes():
    plan = paper(min_chunk_size=3, max_chunk_size=4)(trace_of(100), L, 0.5, gen(1))
    check_chunks(plan, 100, 3, 4)


# ---------------------------------------------------------------- placement (Eq. 4, invariant 9)


def test_paper_identity_placement_eq4():
    tr = trace_of(200)
    for seed in range(5):
        plan = paper()(tr, L, 0.5, gen(seed))
        pos = plan.hint_mask.nonzero().flatten()
        assert torch.equal(plan.hint_ids[pos], torch.tensor(tr.ids)[pos])  # y*_i at position i
        assert torch.all(plan.hint_ids[~plan.hint_mask] == 0)
        expected = torch.zeros(L, dtype=torch.bool)
        for j in plan.revealed:
            expected[plan.chunks[j][0] : plan.chunks[j][1]] = True
        assert torch.equal(plan.hint_mask, expected)


def test_paper_truncates_to_gen_length():
    plan = paper()(trace_of(1000), 64, 1.0, gen(0))
    assert plan.hint_mask.shape == (64,) and plan.chunks[-1][1] <= 64
    check_chunks(plan, 64, 5, 10)


@pytest.mark.parametrize("n", [40, 120, 200, 226, 300])
def test_spacing_scaled_gaps_invariant_9(n):
    chunker = spacing_scaled()
    tr = trace_of(n)
    limit = L - 30
    sf = min(max(limit / n, 1.0), 1.5)
    for seed in range(8):
        plan = chunker(tr, L, 0.4, gen(seed))
        starts_new, prev = [], None
        for j in plan.revealed:
            a, b = plan.chunks[j]
            if prev is None:
                a_new = int(a * sf)
            else:
                pa, pb, pb_new = prev
                a_new = pb_new + min(int((a - pb) * sf), 100)
            b_new = min(a_new + (b - a), limit)
            # token order inside the chunk preserved, placed at a_new
            assert plan.hint_ids[a_new:b_new].tolist() == tr.ids[a : a + (b_new - a_new)]
            assert bool(plan.hint_mask[a_new:b_new].all())
            starts_new.append((a_new, b_new))
            prev = (a, b, b_new)
        mask = torch.zeros(L, dtype=torch.bool)
        for a_new, b_new in starts_new:
            mask[a_new:b_new] = True
        assert torch.equal(plan.hint_mask, mask)
        assert not bool(plan.hint_mask[limit:].any())  # 30-token free tail


def test_spacing_scaled_stretches_short_traces():
    stretched = 0
    for seed in range(5):
        plan = spacing_scaled()(trace_of(60), L, 0.5, gen(seed))  # sf = 1.5
        last_end = plan.chunks[plan.revealed[-1]][1]
        assert plan.hint_mask.nonzero().max().item() + 1 >= last_end
        stretched += plan.hint_mask.nonzero().max().item() + 1 > last_end
    assert stretched > 0
    # eta = 1: all chunks adjacent, gaps 0, nothing moves
    full = spacing_scaled()(trace_of(60), L, 1.0, gen(0))
    assert full.hint_ids[full.hint_mask].tolist() == trace_of(60).ids[: int(full.hint_mask.sum())]
    assert not bool(full.hint_mask[int(full.hint_mask.sum()) :].any())


def test_spacing_scaled_max_spacing_caps_gaps():
    chunker = spacing_scaled(max_spacing=2)
    for seed in range(5):
        plan = chunker(trace_of(100), L, 0.3, gen(seed))
        pos = plan.hint_mask.nonzero().flatten()
        assert int((pos[1:] - pos[:-1]).max()) <= 3  # gap of at most 2 free positions


# ---------------------------------------------------------------- invariant 10: eta -> 0


def test_eta_to_zero_is_plain_generation_in_paper_mode():
    for seed in range(10):
        plan = paper()(trace_of(200), L, 1e-3, gen(seed))
        assert plan.n_revealed == 0 and not bool(plan.hint_mask.any())


def test_eta_to_zero_is_not_plain_in_spacing_scaled_mode():
    for seed in range(10):
        plan = spacing_scaled()(trace_of(200), L, 1e-3, gen(seed))
        assert plan.n_chunks >= 1 and plan.n_revealed >= 1 and bool(plan.hint_mask.any())
        assert plan.n_selected == 1 and plan.n_chunks - 1 in plan.revealed  # ceil(eta*N) = 1, plus the last


@pytest.mark.parametrize("name", ["paper", "spacing_scaled"])
def test_eta_zero_and_one_work(name):
    chunker = get("hint_chunker", name)()
    zero = chunker(trace_of(150), L, 0.0, gen(0))
    assert zero.n_revealed == 0 and not bool(zero.hint_mask.any())
    one = chunker(trace_of(150), L, 1.0, gen(0))
    assert one.n_revealed == one.n_chunks > 0
    assert int(one.hint_mask.sum()) == sum(b - a for a, b in one.chunks)


def test_eta_out_of_range_is_refused():
    with pytest.raises(ValueError):
        paper()(trace_of(50), L, 1.5, gen(0))
    with pytest.raises(ValueError):
        spacing_scaled()(trace_of(50), L, -0.1, gen(0))
    with pytest.raises(ValueError):
        paper(min_chunk_size=6, max_chunk_size=5)


# ---------------------------------------------------------------- invariant 11: answer exclusion

TRACES = {
    "boxed": "<reasoning>\nShe buys 3 bags of 6 apples, 3 * 6 = 18 apples in all, so \\boxed{18}.",
    "hashes": "<reasoning>\nShe buys 3 bags of 6 apples, 3 * 6 = 18 apples in all.\n#### 18",
    "answer_is": "<reasoning>\nShe buys 3 bags of 6 apples, 3 * 6 = 18 apples in all.\nThe answer is: 18",
    "metamath_gsm": "<reasoning>\nShe buys 3 bags of 6 apples, 3 * 6 = 18 apples.\n#### 18\nThe answer is: 18",
    "metamath_math": "<reasoning>\nShe buys 3 bags of 6 apples: $3 \\cdot 6 = \\boxed{18}$.\nThe answer is: 18",
}


@pytest.mark.parametrize("kind", sorted(TRACES))
def test_answer_never_revealed_in_paper_mode(tiny_lm, kind):
    tt = tokenize_trace(tiny_lm.tokenizer, TRACES[kind])
    a, b = tt.answer_span
    assert b - a >= 2
    for seed in range(20):
        plan = paper()(tt, L, 1.0, gen(seed))
        assert plan.n_revealed == plan.n_chunks > 0
        assert not bool(plan.hint_mask[a:].any())  # nothing at or after the answer (identity placement)
        assert all(end <= a for _, end in plan.chunks)


def test_released_placement_can_reveal_the_answer(tiny_lm):
    """Spec sec. 3.3: the released chunker does not exclude the answer (documented, reproduced)."""
    tt = tokenize_trace(tiny_lm.tokenizer, TRACES["metamath_gsm"])
    answer = tt.ids[tt.answer_span[0] : tt.answer_span[1]]
    hits = 0
    for seed in range(10):
        plan = spacing_scaled()(tt, L, 1.0, gen(seed))
        revealed = plan.hint_ids[plan.hint_mask].tolist()
        hits += any(revealed[i : i + 4] == answer[:4] for i in range(len(revealed)))
    assert hits > 0


def test_exclude_answer_off_chunks_everything(tiny_lm):
    tt = tokenize_trace(tiny_lm.tokenizer, TRACES["answer_is"])
    plan = paper(exclude_answer=False)(tt, L, 1.0, gen(0))
    check_chunks(plan, len(tt.ids), 5, 10)


# ---------------------------------------------------------------- determinism, group plans, ratios


@pytest.mark.parametrize("name", ["paper", "spacing_scaled"])
def test_seeded_plans_are_deterministic(name):
    chunker = get("hint_chunker", name)()
    p1 = chunker(trace_of(180), L, 0.4, gen(7))
    p2 = chunker(trace_of(180), L, 0.4, gen(7))
    assert torch.equal(p1.hint_ids, p2.hint_ids) and torch.equal(p1.hint_mask, p2.hint_mask)
    assert p1.chunks == p2.chunks


def test_paper_plan_group_segments_once():
    ratios = torch.tensor([0.2, 0.4, 0.6, 1.0])
    plans = paper().plan_group(trace_of(180), L, ratios, gen(3))
    assert len({p.chunks for p in plans}) == 1
    n = plans[0].n_chunks
    assert [p.n_revealed for p in plans] == [math.floor(float(r) * n + 1e-9) for r in ratios]
    ids, mask = stack_plans(plans)
    assert ids.shape == mask.shape == (4, L) and mask.dtype == torch.bool


def test_spacing_scaled_plan_group():
    plans = spacing_scaled().plan_group(trace_of(180), L, [0.2, 0.6], gen(3))
    assert len(plans) == 2 and all(p.n_revealed >= 1 for p in plans)


def test_init_completion_is_z_hint():
    plan = paper()(trace_of(100), 128, 0.5, gen(0))
    z = plan.init_completion(mask_id=7)
    assert torch.equal(z[plan.hint_mask], plan.hint_ids[plan.hint_mask])
    assert torch.all(z[~plan.hint_mask] == 7)


def test_sample_hint_ratios():
    r = sample_hint_ratios(8, 0.2, 0.6, gen(0))
    assert r.shape == (8,) and torch.all(r[1:] >= r[:-1])
    assert float(r.min()) >= 0.2 and float(r.max()) <= 0.6
    assert torch.equal(r, sample_hint_ratios(8, 0.2, 0.6, gen(0)))
    assert torch.all(sample_hint_ratios(4, 0.3, 0.3, gen(1)) == 0.3)
    with pytest.raises(ValueError):
        sample_hint_ratios(4, 0.6, 0.2, gen(0))


def test_no_global_rng_use():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    paper()(trace_of(200), L, 0.5, gen(0))
    spacing_scaled()(trace_of(200), L, 0.5, gen(0))
    sample_hint_ratios(8, 0.2, 0.6, gen(0))
    assert torch.equal(before, torch.get_rng_state())
