"""Every grader's accuracy on the labelled LLaDA-style fixture (tests/fixtures/grading/llada_style.jsonl).

The fixture is built by ``bench/grading_fixture.py`` from the GSM8K/MATH500 test answers: each failure class of
issue #12 with correct and wrong answers. ``math`` (the default) must be at least as good as d1's regex parser and
plain math-verify on every class; the pinned counts make any change of a grader's verdicts visible.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from igpo_kit.grading import graders

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "grading" / "llada_style.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text().splitlines()]

# correct verdicts (score > 0 iff label) out of len(ROWS); official is the released reward, kept exactly as it is
PINNED = {"math": 348, "gsm8k": 329, "math_verify": 268, "d1": 299, "official": 242}


def verdicts(grader) -> list[bool]:
    return [grader.score(r["completion"], r["gold"]) > 0 for r in ROWS]


@pytest.fixture(scope="module")
def table() -> dict[str, list[bool]]:
    return {name: verdicts(getattr(graders, name)()) for name in PINNED}


def test_fixture_covers_every_class_both_ways():
    by_class = defaultdict(Counter)
    for r in ROWS:
        by_class[(r["source"], r["class"])][r["label"]] += 1
    assert len(ROWS) == 348 and len(by_class) == 29
    for key, labels in by_class.items():
        assert labels[True] > 0 and labels[False] > 0, key


def test_pinned_accuracy(table):
    got = {name: sum(v == r["label"] for v, r in zip(table[name], ROWS)) for name in PINNED}
    assert got == PINNED


def test_math_at_least_as_good_as_d1_and_math_verify_on_every_class(table):
    score = defaultdict(Counter)
    for i, r in enumerate(ROWS):
        for name in ("math", "d1", "math_verify"):
            score[(r["source"], r["class"])][name] += table[name][i] == r["label"]
    for key, s in score.items():
        assert s["math"] >= max(s["d1"], s["math_verify"]), (key, dict(s))


def test_gsm8k_grader_is_exact_on_gsm8k_items(table):
    wrong = [r["id"] for v, r in zip(table["gsm8k"], ROWS) if r["source"] == "gsm8k" and v != r["label"]]
    assert wrong == []


def test_reduced_fractions_option_rejects_unreduced_answers():
    rows = [r for r in ROWS if r["class"] == "unreduced_fraction"]
    strict = graders.math(reduced_fractions=True)
    loose = graders.math()
    for r in rows:
        assert (loose.score(r["completion"], r["gold"]) > 0) == r["label"]
        assert strict.score(r["completion"], r["gold"]) == 0.0  # correct ones are unreduced, wrong ones wrong


def test_fixture_is_what_the_script_builds(shared_dir):
    import importlib.util

    spec = importlib.util.spec_from_file_location("grading_fixture", ROOT / "bench" / "grading_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.build(shared_dir / "data" / "benchmarks", per_class=12, seed=0)
    assert rows == ROWS


def test_math_fast_paths_agree_with_math_verify():
    """Every verdict ``math`` reaches without math-verify is the one math-verify (+ numeric fallback) reaches."""
    g = graders.math()
    decided = 0
    for r in ROWS:
        ans = g.answer(r["completion"])
        if ans is None:
            continue
        quick = g._quick(ans.text, r["gold"].strip())
        if quick is not None:
            decided += 1
            assert quick == g._correct(ans.text, r["gold"].strip()), (r["id"], ans.text, r["gold"])
    assert decided > 0.8 * len(ROWS)
