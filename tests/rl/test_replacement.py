"""Replacement (paper Sec. 3.1, Alg. 1 line 10, App. L; spec sec. 4.4, invariant 13)."""

from __future__ import annotations

import math

import pytest
import torch

from igpo_kit.registry import get
from igpo_kit.rl.replacement import apply_replacements, igpo, none, resample
from igpo_kit.rl.trigger import all_wrong

G = 8


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("lam", [0.25, 0.5, 0.75, 1.0])
@pytest.mark.parametrize("n_correct", [0, 1, 3, 4, 5, 8])
def test_k_is_min_correct_floor_lambda_g(lam, n_correct):
    policy = igpo(replace_fraction=lam)
    for seed in range(5):
        correct = torch.zeros(G, dtype=torch.bool)
        correct[torch.randperm(G, generator=gen(100 + seed))[:n_correct]] = True
        pairs = policy.select(correct, G, gen(seed))
        k = min(n_correct, math.floor(lam * G))
        assert [d for d, _ in pairs] == list(range(k))  # exactly rows 0..K-1
        srcs = [s for _, s in pairs]
        assert len(set(srcs)) == k and all(bool(correct[s]) for s in srcs)  # verified-correct only
        if n_correct <= math.floor(lam * G):
            assert srcs == sorted(srcs)  # all of them, index order


def test_random_choice_uses_the_generator():
    policy = igpo(0.5)
    correct = torch.ones(G, dtype=torch.bool)
    picks = {tuple(policy.select(correct, G, gen(s))) for s in range(20)}
    assert len(picks) > 1
    assert policy.select(correct, G, gen(3)) == policy.select(correct, G, gen(3))


def test_registered_policies():
    assert get("replacement_policy", "igpo")() == igpo()
    p_none = get("replacement_policy", "none")()
    assert not p_none.triggers and not p_none.use_hints
    assert p_none.select(torch.ones(G, dtype=torch.bool), G, gen()) == []
    p_res = get("replacement_policy", "resample")()
    assert p_res.triggers and not p_res.use_hints and p_res == resample()
    assert igpo().triggers and igpo().use_hints and igpo().max_replacements(G) == 4


def test_apply_replacements_invariant_13():
    """Rows 0..K-1 of triggered groups replaced, rows K..G-1 and other groups bit-identical, K correct after."""
    n, t = 3, 5
    g0 = gen(0)
    batch = {
        "completion_ids": torch.randint(0, 100, (n * G, t), generator=g0),
        "hint_mask": torch.zeros(n * G, t, dtype=torch.bool),
        "correctness": torch.zeros(n * G),
        "logps": torch.randn(n * G, t, generator=g0),
    }
    batch["correctness"][G : 2 * G] = torch.tensor([0, 1, 0, 0, 1, 0, 0, 0.0])  # group 1 not all wrong
    triggered = all_wrong(batch["correctness"].view(n, G)).nonzero().flatten().tolist()
    assert triggered == [0, 2]
    m = len(triggered)
    cand_correct = torch.zeros(m * G)
    cand_correct[[1, 2, 6]] = 1.0  # group 0: 3 correct extra rollouts
    cand_correct[G:] = 1.0  # group 2: 8 correct extra rollouts
    candidates = {
        "completion_ids": torch.randint(100, 200, (m * G, t), generator=g0),
        "hint_mask": torch.rand(m * G, t, generator=g0) < 0.3,
        "correctness": cand_correct,
        "logps": torch.randn(m * G, t, generator=g0),
    }
    policy = igpo(0.5)
    pairs = [policy.select(cand_correct[j * G : (j + 1) * G].bool(), G, gen(j)) for j in range(m)]
    out, replaced = apply_replacements(batch, candidates, pairs, triggered, G)
    ks = [len(p) for p in pairs]
    assert ks == [3, 4]
    for j, g in enumerate(triggered):
        k = ks[j]
        rows = slice(g * G, (g + 1) * G)
        assert out["correctness"][rows].sum().item() == k  # final group has exactly K correct
        assert replaced[rows].tolist() == [True] * k + [False] * (G - k)
        for key in batch:
            for d, s in pairs[j]:
                assert torch.equal(out[key][g * G + d], candidates[key][j * G + s])
            assert torch.equal(out[key][g * G + k : (g + 1) * G], batch[key][g * G + k : (g + 1) * G])
    for key in batch:  # untouched group, and inputs not modified
        assert torch.equal(out[key][G : 2 * G], batch[key][G : 2 * G])
        assert out[key].dtype == batch[key].dtype
    assert int(batch["correctness"].sum()) == 2


def test_apply_replacements_no_pairs_is_identity_and_checks():
    batch = {"x": torch.arange(16.0).view(8, 2)}
    out, replaced = apply_replacements(batch, {"x": torch.zeros(8, 2)}, [[]], [0], G)
    assert torch.equal(out["x"], batch["x"]) and not bool(replaced.any())
    with pytest.raises(KeyError):
        apply_replacements(batch, {}, [[(0, 1)]], [0], G)
    with pytest.raises(ValueError):
        apply_replacements(batch, {"x": torch.zeros(8, 3)}, [[(0, 1)]], [0], G)
    with pytest.raises(ValueError):
        igpo(replace_fraction=1.5)
