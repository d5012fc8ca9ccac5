"""Synthetic arithmetic word problems with step-by-step ground-truth traces (dataset ``arithmetic``).

A small, offline task for the tiny char-level dLLM: learnable after minutes of CPU SFT but not solved, so that RL
sees all-wrong groups often but not always (the regime IGPO targets). Example (difficulty 2)::

    question: "Tom has 3 apples. He buys 4 more. He gives away 2. How many apples does Tom have now?"
    trace:    "3+4=7. 7-2=5."                                                   (trace_style="short", default)
    trace:    "Tom has 3 apples. He buys 4 more, so 3+4=7. He gives away 2, so 7-2=5."  (trace_style="verbose")
    answer:   "5"

Difficulty knob ``d`` (>= 1): ``d`` operations; numbers (operands; the start value is >= 2) in ``1..9`` for
``d <= 2``, in ``1..10(d-1)-1`` above (19 for d=3, 29 for d=4, ...); additions and subtractions (never below 0),
plus doubling / tripling from ``d >= 4``.

Calibration (default tiny model, 145k parameters, ``llada_reasoning`` prompt, SFT answers padded to 128 generation
tokens, batch 16, lr 2e-3, 5 minutes on one busy CPU thread, ~1000 steps; evaluated on 24 test prompts, one
prompt per batch, L=128, block 32): ``d=2, short``: greedy accuracy 17%, at tau=1.2 (RL) 9% per sample and 46% of
groups of 8 all wrong — the intended regime (``d=1, short``: 4% / 8% / 58%; 24 prompts, so +-10 points);
more CPU time raises it. The quickstart's SFT (``recipes/quickstart.gin``: lr 4e-3 with WSD decay, 2000
steps, ``<reasoning>`` prefill, ~5 min) reaches ~27% greedy on the calibration set, 20% on 128 held-out problems. ``verbose`` traces (2-3x longer) were still
unlearned after the same budget (0%), so ``short`` is the default; use ``verbose`` with a larger model or budget.

Splits are disjoint by construction: a problem belongs to ``test`` iff a hash of its question text falls in the
test bucket (``TEST_FRACTION`` = 10%), whatever the seed or difficulty; within a split the problems are unique.
Deterministic for a given ``(n, difficulty, seed, split, trace_style)``, and ``arithmetic(n=k)`` is a prefix of
``arithmetic(n=m)`` for ``k < m``. Everything is printable ASCII.
"""

from __future__ import annotations

import hashlib
import random

from igpo_kit.data.examples import Example

__all__ = ["arithmetic", "SPLITS"]

SPLITS = ("train", "test")
TEST_FRACTION = 0.1
SOURCE = "synthetic/arithmetic"

_PEOPLE = [
    ("Tom", "He"), ("Ann", "She"), ("Sam", "He"), ("Mia", "She"), ("Ben", "He"), ("Eva", "She"),
    ("Max", "He"), ("Zoe", "She"), ("Leo", "He"), ("Ivy", "She"), ("Dan", "He"), ("Amy", "She"),
]
_ITEMS = ["apples", "pens", "cards", "coins", "books", "stamps", "marbles", "shells", "eggs", "cookies"]
_ADD = ["buys {n} more", "finds {n} more", "gets {n} more", "wins {n} more"]
_SUB = ["gives away {n}", "loses {n}", "sells {n}", "uses {n}"]
_MUL = {2: "doubles them", 3: "triples them"}


def _in_test(question: str) -> bool:
    h = int.from_bytes(hashlib.sha256(question.encode("ascii")).digest()[:8], "big")
    return (h % 1000) < int(TEST_FRACTION * 1000)


def _max_number(difficulty: int) -> int:
    return 9 if difficulty <= 2 else 10 * (difficulty - 1) - 1


def _problem(rng: random.Random, difficulty: int, trace_style: str) -> tuple[str, str, str, list[str]]:
    name, pron = rng.choice(_PEOPLE)
    item = rng.choice(_ITEMS)
    hi = _max_number(difficulty)
    value = rng.randint(2, hi)  # >= 2: no "1 apples"
    q_parts = [f"{name} has {value} {item}."]
    t_parts = [f"{name} has {value} {item}."]
    eqs: list[str] = []
    ops: list[str] = []
    for _ in range(difficulty):
        kinds = ["add", "sub"] + (["mul"] if difficulty >= 4 and value <= hi else [])
        kind = rng.choice(kinds)
        if kind == "sub" and value == 0:
            kind = "add"
        if kind == "add":
            n = rng.randint(1, hi)
            phrase = rng.choice(_ADD).format(n=n)
            eq = f"{value}+{n}={value + n}"
            value += n
        elif kind == "sub":
            n = rng.randint(1, min(value, hi))
            phrase = rng.choice(_SUB).format(n=n)
            eq = f"{value}-{n}={value - n}"
            value -= n
        else:
            n = rng.choice(sorted(_MUL))
            phrase = _MUL[n]
            eq = f"{value}*{n}={value * n}"
            value *= n
        ops.append(kind)
        q_parts.append(f"{pron} {phrase}.")
        t_parts.append(f"{pron} {phrase}, so {eq}.")
        eqs.append(eq + ".")
    q_parts.append(f"How many {item} does {name} have now?")
    trace = " ".join(t_parts) if trace_style == "verbose" else " ".join(eqs)
    return " ".join(q_parts), trace, str(value), ops


def arithmetic(
    n: int = 512,
    difficulty: int = 2,
    seed: int = 0,
    split: str = "train",
    trace_style: str = "short",
) -> list[Example]:
    """``n`` arithmetic word problems with step-by-step traces.

    Args:
        n: number of examples.
        difficulty: number of operations (and size of the numbers, see the module docstring); >= 1.
        seed: generation seed (a private ``random.Random``; the global RNG is untouched).
        split: ``"train"`` or ``"test"`` (disjoint for any seeds).
        trace_style: ``"short"`` (the equations only; default, learnable by the tiny model in minutes) or
            ``"verbose"`` (sentences with the equations).
    Returns:
        Examples with ids ``"arithmetic/<split>/<i>"``, gold ``answer`` (an integer string), ``trace``, and ``meta``
        ``{"difficulty", "seed", "ops"}``.
    """
    from igpo_kit.errors import ConfigError

    if split not in SPLITS:
        raise ConfigError(f"dataset.arithmetic: split must be one of {SPLITS}, got {split!r}")
    if difficulty < 1:
        raise ConfigError(f"dataset.arithmetic: difficulty must be >= 1, got {difficulty}")
    if n < 0:
        raise ConfigError(f"dataset.arithmetic: n must be >= 0, got {n}")
    if trace_style not in ("verbose", "short"):
        raise ConfigError(f"dataset.arithmetic: trace_style must be 'verbose' or 'short', got {trace_style!r}")
    rng = random.Random(f"arithmetic:{seed}:{difficulty}:{split}")
    want_test = split == "test"
    seen: set[str] = set()
    out: list[Example] = []
    attempts, max_attempts = 0, 200 * n + 1000
    while len(out) < n:
        attempts += 1
        if attempts > max_attempts:
            raise ConfigError(
                f"dataset.arithmetic: only {len(out)} unique {split} problems found at difficulty {difficulty} "
                f"(asked for {n}); use a larger difficulty or a smaller n"
            )
        question, trace, answer, ops = _problem(rng, difficulty, trace_style)
        if question in seen or _in_test(question) != want_test:
            continue
        seen.add(question)
        out.append(
            Example(
                id=f"arithmetic/{split}/{len(out)}",
                question=question,
                answer=answer,
                trace=trace,
                source=SOURCE,
                meta={"difficulty": difficulty, "seed": seed, "ops": ops},
            )
        )
    return out
