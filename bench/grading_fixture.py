"""Labelled LLaDA-style completions for grader accuracy tests and benches (built from GSM8K/MATH500 test answers).

Each row: ``id``, ``source`` (gsm8k | math500), ``class`` (the failure class it exercises), ``completion``,
``gold`` (the benchmark's answer as a dataset loader gives it), ``label`` (True when the completion's final answer
is correct by construction), ``answer`` (the answer the completion states, None when it states none).

Completions look like LLaDA-8B-Instruct generations: ``<reasoning>..</reasoning>\\n<answer>\\n\\boxed{..}\\n</answer>``
followed by ``<|eot_id|>``/``<|endoftext|>`` padding, plus the malformed shapes of issue #12 (units or words in
the box, clock times, unslashed or unclosed boxes, unboxed answers, empty or broken answer tags, boxes after the
answer region, ``\\boxed{}32``, truncation, no tags) and the forms math-verify must keep winning (thousands
separators, negatives, decimal vs fraction, reordered complex numbers, ``\\sqrt{3}/3``, ``\\text{}`` answers,
unreduced fractions). Every class appears with correct and wrong answers.

    python bench/grading_fixture.py                     # rewrites tests/fixtures/grading/llada_style.jsonl
    python bench/grading_fixture.py --n 1600 --out /tmp/answers.jsonl --benchmarks ../shared/data/benchmarks
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT.parent / "shared" / "data" / "benchmarks"
FIXTURE = ROOT / "tests" / "fixtures" / "grading" / "llada_style.jsonl"
REASONING_CHARS = 220

UNITS = ["dollars", "eggs", "white hats", "tickets", "cookies", "minutes", "miles", "pages", "changes/day", "apples"]
PADS = ["<|eot_id|>", "<|endoftext|>"]


# --- benchmark rows -----------------------------------------------------------------------------------------------


def _calc_free(text: str) -> str:
    return re.sub(r"<<[^<>]*>>", "", text)


def load_items(benchmarks: Path) -> tuple[list[dict], list[dict]]:
    """(gsm8k items, math500 items), each ``{"gold", "reasoning", "value"}`` (value: int/float gold or None)."""
    gsm, math = [], []
    for line in (benchmarks / "gsm8k_test.jsonl").read_text().splitlines():
        row = json.loads(line)
        body, _, gold = row["answer"].rpartition("####")
        gold = gold.replace(",", "").strip()
        gsm.append({"gold": gold, "reasoning": _calc_free(body).strip(), "value": _number(gold)})
    for line in (benchmarks / "math500_test.jsonl").read_text().splitlines():
        row = json.loads(line)
        reasoning = re.sub(r"\s+", " ", row["solution"]).strip()
        math.append({"gold": row["answer"], "reasoning": reasoning, "value": _number(row["answer"])})
    return gsm, math


def _number(text: str) -> int | float | None:
    t = text.replace(",", "").strip()
    if re.fullmatch(r"-?\d+", t):
        return int(t)
    if re.fullmatch(r"-?\d*\.\d+", t):
        return float(t)
    return None


# --- completion shapes --------------------------------------------------------------------------------------------


def _reasoning(item: dict, rng: random.Random) -> str:
    text = item["reasoning"][:REASONING_CHARS]
    text = re.sub(r"\\boxed\{", r"{", text)  # keep the boxes the class puts in; MATH solutions box their answer
    cut = text.rfind(" ")
    return text[:cut] if cut > 40 and len(item["reasoning"]) > REASONING_CHARS else text


def _pad(rng: random.Random) -> str:
    return rng.choice(PADS) * rng.randint(0, 24)


def _wrap(reasoning: str, answer_block: str, rng: random.Random) -> str:
    return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{answer_block}\n</answer>" + _pad(rng)


def _fmt_number(v: int | float) -> str:
    return str(v) if isinstance(v, int) else repr(v)


def _wrong_number(v: int | float, rng: random.Random) -> int | float:
    if isinstance(v, int):
        return v + rng.choice([-1, 1]) * rng.randint(1, max(2, abs(v) // 4 + 1))
    return round(v + rng.choice([-1, 1]) * rng.randint(1, 9) / 10, 6)


def _wrong_latex(gold: str, rng: random.Random, others: list[dict]) -> str:
    """A different answer: the first digit changed, else another item's gold."""
    m = re.search(r"\d", gold)
    if m is not None:
        d = int(m.group(0))
        return gold[: m.start()] + str((d + rng.randint(1, 8)) % 10 or 7) + gold[m.end() :]
    while True:
        other = rng.choice(others)["gold"]
        if other.replace(" ", "") != gold.replace(" ", ""):
            return other


# Each class: (name, source, eligible(item) -> bool, make(item, correct, rng, others) -> (completion, answer)).
Make = Callable[[dict, bool, random.Random, list], tuple[str, "str | None"]]


def _num_answer(item, correct, rng) -> int | float:
    return item["value"] if correct else _wrong_number(item["value"], rng)


def _latex_answer(item, correct, rng, others) -> str:
    return item["gold"] if correct else _wrong_latex(item["gold"], rng, others)


def c_clean_gsm(item, correct, rng, others):
    a = _fmt_number(_num_answer(item, correct, rng))
    return _wrap(_reasoning(item, rng), f"\\boxed{{{a}}}", rng), a


def c_units_in_box(item, correct, rng, others):
    a = _fmt_number(_num_answer(item, correct, rng))
    unit = rng.choice(UNITS)
    inner = f"{a} \\text{{ {unit}}}" if rng.random() < 0.3 else f"{a} {unit}"
    return _wrap(_reasoning(item, rng), f"\\boxed{{{inner}}}", rng), a


def c_clock_time(item, correct, rng, others):
    h = item["value"]
    shown = f"{h}:00" if correct else rng.choice([f"{h % 12 + 1}:00", f"{h}:30"])
    return _wrap(_reasoning(item, rng), f"\\boxed{{{shown} {rng.choice(['pm', 'am', 'PM'])}}}", rng), shown


def c_thousands(item, correct, rng, others):
    v = _num_answer(item, correct, rng)
    a = f"{v:,}"
    return _wrap(_reasoning(item, rng), f"\\boxed{{{a}}}", rng), a


def c_dollar(item, correct, rng, others):
    v = _num_answer(item, correct, rng)
    a = rng.choice([f"\\${_fmt_number(v)}", f"\\${v:,.2f}" if isinstance(v, int) else f"\\${v}"])
    return _wrap(_reasoning(item, rng), f"\\boxed{{{a}}}", rng), a


def c_trailing_zero(item, correct, rng, others):
    v = _num_answer(item, correct, rng)
    a = f"{v}.0" if isinstance(v, int) else f"{v}0"
    return _wrap(_reasoning(item, rng), f"\\boxed{{{a}}}", rng), a


def c_no_backslash(item, correct, rng, others):
    a = _answer_text(item, correct, rng, others)
    return _wrap(_reasoning(item, rng), f"boxed{{{a}}}", rng), a


def c_unclosed_box(item, correct, rng, others):
    a = _answer_text(item, correct, rng, others)
    return _wrap(_reasoning(item, rng), f"\\boxed{{{a}", rng), a


def c_unboxed_region(item, correct, rng, others):
    a = _answer_text(item, correct, rng, others)
    shape = rng.choice(["{a}", "{a} {unit}", "The answer is {a}."]) if item["value"] is not None else "{a}"
    return _wrap(_reasoning(item, rng), shape.format(a=a, unit=rng.choice(UNITS)), rng), a


def c_empty_region_then_box(item, correct, rng, others):
    a = _answer_text(item, correct, rng, others)
    text = f"<reasoning>\n{_reasoning(item, rng)}\n</reasoning>\n<answer>\n</answer>\n\\boxed{{{a}}}" + _pad(rng)
    return text, a


def c_broken_close_tag(item, correct, rng, others):
    a = _answer_text(item, correct, rng, others)
    tail = rng.choice([" " + rng.choice(UNITS) + ".", ".", ""])
    text = f"<reasoning>\n{_reasoning(item, rng)}\n</reasoning>\n<answer>\n\\boxed{{{a}}}{tail}\n</<answer>" + _pad(rng)
    return text, a


def c_box_after_region(item, correct, rng, others):
    a = _answer_text(item, correct, rng, others)
    note = rng.choice(["We add the parts as above.", "So the total follows from step 2.", "Combining 2 results."])
    text = (f"<reasoning>\n{_reasoning(item, rng)}\n</reasoning>\n<answer>\n{note}\n</answer>\n"
            f"The final answer is \\boxed{{{a}}}." + _pad(rng))
    return text, a


def c_empty_box_then_number(item, correct, rng, others):
    a = _answer_text(item, correct, rng, others)
    return _wrap(_reasoning(item, rng), f"\\boxed{{}}{a}", rng), a


def c_truncated(item, correct, rng, others):
    """correct: cut after the box (no closing tag); wrong: cut inside the reasoning (no answer at all)."""
    if correct:
        a = _answer_text(item, True, rng, others)
        return f"<reasoning>\n{_reasoning(item, rng)}\n</reasoning>\n<answer>\n\\boxed{{{a}}}", a
    text = item["reasoning"][: rng.randint(30, 120)]
    return f"<reasoning>\n{text}", None


def c_no_tags(item, correct, rng, others):
    a = _answer_text(item, correct, rng, others)
    tail = rng.choice([f"The answer is $\\boxed{{{a}}}$.", f"Therefore the answer is \\boxed{{{a}}}.", f"#### {a}"])
    return f"{_reasoning(item, rng)}\n{tail}" + _pad(rng), a


def c_box_in_reasoning(item, correct, rng, others):
    """An intermediate boxed value in the reasoning; the answer region holds the final one."""
    a = _answer_text(item, correct, rng, others)
    other = _answer_text(item, not correct, rng, others)
    reasoning = f"{_reasoning(item, rng)} First we get \\boxed{{{other}}}, then we continue."
    return _wrap(reasoning, f"\\boxed{{{a}}}", rng), a


def c_clean_math(item, correct, rng, others):
    a = _latex_answer(item, correct, rng, others)
    return _wrap(_reasoning(item, rng), f"\\boxed{{{a}}}", rng), a


def c_negative(item, correct, rng, others):
    g = item["gold"]
    a = g if correct else g[1:].lstrip()
    return _wrap(_reasoning(item, rng), f"\\boxed{{{a}}}", rng), a


def _terminating_decimal(gold: str) -> str | None:
    m = re.fullmatch(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}", gold.strip())
    if m is None:
        return None
    sign, p, q = m.group(1), int(m.group(2)), int(m.group(3))
    r = q
    for f in (2, 5):
        while r % f == 0:
            r //= f
    if r != 1:
        return None
    return sign + repr(p / q)


def _equivalent_form(gold: str) -> str | None:
    """An equal answer written differently (decimal for a fraction, a/b for \\frac, reordered complex, \\dfrac)."""
    dec = _terminating_decimal(gold)
    if dec is not None:
        return dec
    m = re.fullmatch(r"\\frac\{(\\sqrt\{?\d+\}?)\}\{(\d+)\}", gold.strip())
    if m is not None:
        return f"{m.group(1)}/{m.group(2)}"
    m = re.fullmatch(r"(-?\d+)\s*([+-])\s*(\d*)i", gold.strip())
    if m is not None:
        a, op, b = m.groups()
        return f"{'-' if op == '-' else ''}{b}i {'-' if a.startswith('-') else '+'} {a.lstrip('-')}"
    if "\\frac" in gold and "\\dfrac" not in gold:
        return gold.replace("\\frac", "\\dfrac")
    return None


def c_equivalent_form(item, correct, rng, others):
    a = _equivalent_form(item["gold"]) if correct else _wrong_latex(item["gold"], rng, others)
    return _wrap(_reasoning(item, rng), f"\\boxed{{{a}}}", rng), a


def c_unreduced_fraction(item, correct, rng, others):
    m = re.fullmatch(r"\\frac\{(\d+)\}\{(\d+)\}", item["gold"].strip())
    p, q = int(m.group(1)), int(m.group(2))
    k = rng.randint(2, 4)
    a = f"\\frac{{{k * p}}}{{{k * q}}}" if correct else f"\\frac{{{k * p + 1}}}{{{k * q}}}"
    return _wrap(_reasoning(item, rng), f"\\boxed{{{a}}}", rng), a


def c_text_answer(item, correct, rng, others):
    g = item["gold"]
    inner = re.fullmatch(r"\\text\{(.*)\}", g.strip())
    a = (g if rng.random() < 0.5 else inner.group(1)) if correct else _wrong_latex(g, rng, others)
    return _wrap(_reasoning(item, rng), f"\\boxed{{{a}}}", rng), a


def _answer_text(item, correct, rng, others) -> str:
    if item["value"] is not None:
        return _fmt_number(_num_answer(item, correct, rng))
    return _latex_answer(item, correct, rng, others)


def _is_int(item) -> bool:
    return isinstance(item["value"], int)


def _any(item) -> bool:
    return True


def _numeric(item) -> bool:
    return item["value"] is not None


CLASSES: list[tuple[str, str, Callable[[dict], bool], Make]] = [
    ("clean", "gsm8k", _numeric, c_clean_gsm),
    ("units_in_box", "gsm8k", _numeric, c_units_in_box),
    ("clock_time", "gsm8k", lambda it: _is_int(it) and 1 <= it["value"] <= 11, c_clock_time),
    ("thousands", "gsm8k", lambda it: _is_int(it) and it["value"] >= 1000, c_thousands),
    ("dollar", "gsm8k", _numeric, c_dollar),
    ("trailing_zero", "gsm8k", _numeric, c_trailing_zero),
    ("no_backslash", "gsm8k", _numeric, c_no_backslash),
    ("unclosed_box", "gsm8k", _numeric, c_unclosed_box),
    ("unboxed_region", "gsm8k", _numeric, c_unboxed_region),
    ("empty_region_then_box", "gsm8k", _numeric, c_empty_region_then_box),
    ("broken_close_tag", "gsm8k", _numeric, c_broken_close_tag),
    ("box_after_region", "gsm8k", _numeric, c_box_after_region),
    ("empty_box_then_number", "gsm8k", _numeric, c_empty_box_then_number),
    ("truncated", "gsm8k", _numeric, c_truncated),
    ("no_tags", "gsm8k", _numeric, c_no_tags),
    ("box_in_reasoning", "gsm8k", _numeric, c_box_in_reasoning),
    ("clean", "math500", _any, c_clean_math),
    ("negative", "math500", lambda it: it["gold"].startswith("-") and len(it["gold"]) > 1, c_negative),
    ("thousands", "math500", lambda it: _is_int(it) and it["value"] >= 1000, c_thousands),
    ("equivalent_form", "math500", lambda it: _equivalent_form(it["gold"]) is not None, c_equivalent_form),
    ("unreduced_fraction", "math500", lambda it: re.fullmatch(r"\\frac\{\d+\}\{\d+\}", it["gold"].strip()) is not None,
     c_unreduced_fraction),
    ("text_answer", "math500", lambda it: re.fullmatch(r"\\text\{[A-Za-z ]+\}", it["gold"].strip()) is not None,
     c_text_answer),
    ("units_in_box", "math500", lambda it: _is_int(it), c_units_in_box),
    ("unclosed_box", "math500", _any, c_unclosed_box),
    ("unboxed_region", "math500", _any, c_unboxed_region),
    ("broken_close_tag", "math500", _any, c_broken_close_tag),
    ("box_after_region", "math500", _any, c_box_after_region),
    ("truncated", "math500", _any, c_truncated),
    ("box_in_reasoning", "math500", _any, c_box_in_reasoning),
]


def build(benchmarks: Path, per_class: int = 10, seed: int = 0, n: int | None = None) -> list[dict]:
    """``per_class`` items per (class, source), half correct; or ``n`` items in total, cycling the classes."""
    rng = random.Random(seed)
    gsm, math = load_items(benchmarks)
    pools = {"gsm8k": gsm, "math500": math}
    rows: list[dict] = []
    total = n if n is not None else per_class * len(CLASSES)
    k = 0
    while len(rows) < total:
        name, source, eligible, make = CLASSES[k % len(CLASSES)]
        round_ = k // len(CLASSES)
        k += 1
        candidates = [it for it in pools[source] if eligible(it)]
        item = rng.choice(candidates)
        correct = round_ % 2 == 0
        completion, answer = make(item, correct, rng, pools[source])
        rows.append({"id": f"{source}-{name}-{round_}", "source": source, "class": name, "completion": completion,
                     "gold": item["gold"], "label": correct, "answer": answer})
    return rows


def write(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmarks", type=Path, default=BENCHMARKS)
    ap.add_argument("--per-class", type=int, default=12)
    ap.add_argument("--n", type=int, default=None, help="total items (overrides --per-class)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=FIXTURE)
    args = ap.parse_args(argv)
    if not (args.benchmarks / "gsm8k_test.jsonl").exists():
        sys.exit(f"error: no gsm8k_test.jsonl in {args.benchmarks} (pass --benchmarks)")
    rows = build(args.benchmarks, args.per_class, args.seed, args.n)
    write(rows, args.out)
    print(f"{len(rows)} rows -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
