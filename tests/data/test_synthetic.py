"""Synthetic arithmetic dataset: deterministic, disjoint splits, correct traces, printable ASCII, difficulty knob."""

from __future__ import annotations

import re
import string

import pytest

from igpo_kit.data.examples import Example
from igpo_kit.data.synthetic import arithmetic
from igpo_kit.errors import ConfigError

PRINTABLE = set(string.printable[:95])


def test_deterministic_and_prefix_stable():
    a = arithmetic(50, difficulty=2, seed=3)
    b = arithmetic(50, difficulty=2, seed=3)
    assert a == b
    assert arithmetic(20, difficulty=2, seed=3) == a[:20]
    assert arithmetic(50, difficulty=2, seed=4) != a
    assert all(isinstance(e, Example) for e in a)
    assert len({e.id for e in a}) == 50 and a[7].id == "arithmetic/train/7"


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_splits_disjoint(difficulty):
    train = {e.question for s in (0, 1) for e in arithmetic(300, difficulty=difficulty, seed=s)}
    test = {e.question for s in (0, 1) for e in arithmetic(100, difficulty=difficulty, seed=s, split="test")}
    assert len(test) >= 100 and not train & test
    assert len(arithmetic(300, difficulty=difficulty)) == len({e.question for e in arithmetic(300, difficulty=difficulty)})


@pytest.mark.parametrize("difficulty", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("style", ["short", "verbose"])
def test_traces_are_correct(difficulty, style):
    for e in arithmetic(100, difficulty=difficulty, seed=1, trace_style=style):
        assert set(e.question) <= PRINTABLE and set(e.trace) <= PRINTABLE
        eqs = re.findall(r"(\d+)([-+*])(\d+)=(\d+)", e.trace)
        assert len(eqs) == difficulty == e.meta["difficulty"]
        value = None
        for a, op, b, r in eqs:
            a, b, r = int(a), int(b), int(r)
            assert value is None or a == value  # each step starts from the previous result
            assert r == {"+": a + b, "-": a - b, "*": a * b}[op] and r >= 0
            value = r
        assert e.answer == str(value)
        assert e.question.endswith("have now?")
        if style == "verbose":
            assert e.trace.startswith(e.question.split(".")[0] + ".")


def test_difficulty_scales_length_and_numbers():
    for style, budget in (("verbose", 90), ("short", 20)):
        lens = [sum(len(e.trace) for e in arithmetic(100, difficulty=d, trace_style=style)) / 100 for d in (1, 2, 3, 4)]
        assert lens == sorted(lens)
        assert lens[1] < budget  # difficulty 2 fits the tiny model's RL generation budget with the tags
    big = max(int(x) for e in arithmetic(200, difficulty=3) for x in re.findall(r"\d+", e.question))
    assert 9 < big <= 19
    assert max(int(x) for e in arithmetic(200, difficulty=2) for x in re.findall(r"\d+", e.question)) <= 9
    assert any("*" in e.trace for e in arithmetic(100, difficulty=4))
    assert any("doubles them" in e.question or "triples them" in e.question for e in arithmetic(100, difficulty=4))


def test_short_style():
    e = arithmetic(1, difficulty=2)[0]
    assert re.fullmatch(r"\d+[-+*]\d+=\d+\. \d+[-+*]\d+=\d+\.", e.trace)
    assert e.question == arithmetic(1, difficulty=2, trace_style="verbose")[0].question


def test_bad_arguments():
    with pytest.raises(ConfigError):
        arithmetic(5, split="dev")
    with pytest.raises(ConfigError):
        arithmetic(5, difficulty=0)
    with pytest.raises(ConfigError):
        arithmetic(5, trace_style="long")
