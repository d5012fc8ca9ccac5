"""Noisy-trace corruptions (paper App. J, Table 4; spec sec. 3.6)."""

from __future__ import annotations

import math
import re

import pytest
import torch

from igpo_kit.hints.answer_span import find_answer_span
from igpo_kit.hints.corruption import HESITATIONS, Corruption
from igpo_kit.registry import get

KINDS = ["number", "operator", "logic", "hesitation", "mixed"]
EXAMPLE = "Let's calculate: 8 × 15 = 120, then 120 ÷ 4 = 30. Therefore, the answer is 30."
LONG = " ".join(
    f"Step {i}: {i} + {i + 3} = {2 * i + 3}, so $x \\times {i} - 2 / 7 = y$; therefore we continue because it works."
    for i in range(60)
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("kind", KINDS)
def test_rate_zero_is_identity(kind):
    c = get("corruption", kind)(rate=0.0)
    assert c(LONG, gen(0)) == LONG and c(EXAMPLE, gen(1)) == EXAMPLE


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_empirical_rate_matches_rho(kind, rate):
    c = get("corruption", kind)(rate=rate)
    n = k = 0
    for seed in range(5):
        res = c.apply(LONG, gen(seed))
        n += res.n_candidates
        k += res.n_corrupted
    assert n >= 200
    sigma = math.sqrt(n * rate * (1 - rate))
    assert abs(k - n * rate) <= 5 * sigma, (k, n)


@pytest.mark.parametrize("kind", KINDS)
def test_seeded_is_deterministic_and_seed_dependent(kind):
    c = get("corruption", kind)(rate=0.3)
    assert c(LONG, gen(3)) == c(LONG, gen(3))
    assert c(LONG, gen(3)) != c(LONG, gen(4))


def test_number_never_a_no_op_and_counts_match():
    c = Corruption("number", rate=0.4)
    res = c.apply(LONG, gen(0))
    old = re.findall(r"\d+", LONG)
    new = re.findall(r"\d+", res.text)
    assert len(old) == len(new)
    changed = sum(a != b for a, b in zip(old, new))
    assert changed == res.n_corrupted > 0
    assert all(int(x) >= 0 for x in new)
    full = Corruption("number", rate=1.0)(EXAMPLE, gen(0))
    assert re.findall(r"\d+", full) != re.findall(r"\d+", EXAMPLE)
    assert all(a != b for a, b in zip(re.findall(r"\d+", full), re.findall(r"\d+", EXAMPLE)))


def test_number_keeps_format():
    out = Corruption("number", rate=1.0)("costs 1,250.75 dollars", gen(0))
    assert re.fullmatch(r"costs \d{1,3}(,\d{3})*\.75 dollars", out)


def test_operator_swaps():
    out = Corruption("operator", rate=1.0)(EXAMPLE, gen(0))
    assert out == "Let's calculate: 8 ÷ 15 = 120, then 120 × 4 = 30. Therefore, the answer is 30."
    latex = Corruption("operator", rate=1.0)("$a \\div b + 3 - 2 * 4 / 5$", gen(0))
    assert latex == "$a \\times b - 3 + 2 / 4 * 5$"
    # hyphens, tags and signs are not operators
    text = "a two-digit number </reasoning> $-3$"
    assert Corruption("operator", rate=1.0)(text, gen(0)) == text


def test_logic_swaps_preserve_case():
    out = Corruption("logic", rate=1.0)(EXAMPLE, gen(0))
    assert out == EXAMPLE.replace("Therefore", "However")
    assert Corruption("logic", rate=1.0)("so it fails because x", gen(0)) == "but it fails although x"


def test_hesitation_inserts_before_words():
    out = Corruption("hesitation", rate=1.0)("Let's add two numbers", gen(0))
    words = out.split()
    assert len(words) == 8
    assert [w.lower() for w in words[0::2]] == [w for w in [w.lower() for w in words[0::2]] if w in HESITATIONS]
    assert words[1::2] == ["let's", "add", "two", "numbers"]
    assert words[0][0].isupper()
    # LaTeX commands and tags are not words
    assert Corruption("hesitation", rate=1.0)("\\frac{1}{2} <reasoning>", gen(0)) == "\\frac{1}{2} <reasoning>"


def test_mixed_uses_several_kinds():
    out = Corruption("mixed", rate=0.5)(LONG, gen(0))
    assert any(h in out.lower().split() for h in HESITATIONS)  # hesitation
    assert "however" in out.lower() or "although" in out.lower()  # logic
    assert re.findall(r"\d+", out) != re.findall(r"\d+", LONG)  # numbers


@pytest.mark.parametrize("kind", KINDS)
def test_answer_region_protected_by_default(kind):
    trace = "We get 3 + 15 = 18 so therefore it is 18.\n#### 18\nThe answer is: 18"
    out = Corruption(kind, rate=1.0)(trace, gen(0))
    s = find_answer_span(out)
    assert out[s[0] : s[1]] == "#### 18\nThe answer is: 18"
    assert out != trace


def test_protect_answer_off_corrupts_everything():
    trace = "so 3 + 15 = 18.\nThe answer is: 18"
    out = Corruption("number", rate=1.0, protect_answer=False)(trace, gen(0))
    assert not out.endswith(": 18")


def test_invalid_arguments():
    with pytest.raises(ValueError):
        Corruption("number", rate=1.5)
    with pytest.raises(ValueError):
        Corruption("typo", rate=0.1)
