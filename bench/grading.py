"""Grading throughput: math-verify grader, in-process serial vs the process pool (answers/s and the ratio).

The serial/pool comparison uses ``math_verify(fast_numeric=False)`` so that every answer goes through math-verify
(what non-numeric MATH-style answers cost); the default grader's numeric fast path is reported separately.

    python bench/grading.py [--n 1000] [--workers 2] [--timeout 5]

Uses GSM8K-style completions (``<reasoning>..</reasoning><answer>\\boxed{..}</answer>``) built from the GSM8K golds in
``../shared/data/benchmarks/gsm8k_test.jsonl`` when present, else synthetic numbers; ~1/3 are wrong, some use
thousands separators or trailing ``.0``. Golds are shifted per run so no answer string repeats across runs (math-verify's parse cache does not help).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from igpo_kit.grading import GradingPool, grade_many, graders  # noqa: E402
from igpo_kit.grading.extract import gsm8k_gold  # noqa: E402

BENCH = ROOT.parent / "shared" / "data" / "benchmarks" / "gsm8k_test.jsonl"


def make_answers(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    if BENCH.exists():
        rows = [json.loads(line) for line in BENCH.read_text().splitlines() if line.strip()]
        base = [gsm8k_gold(r["answer"]) for r in rows]
    else:
        base = [str(rng.randint(1, 100000)) for _ in range(n)]
    completions, golds = [], []
    for i in range(n):
        raw = base[i % len(base)]
        value = int(float(raw)) if raw.lstrip("-").replace(".", "", 1).isdigit() else 0
        value += seed * 100_003 + (i // len(base)) * 7  # distinct strings per run: no parse-cache hits
        gold = str(value)
        kind = i % 6
        if kind in (0, 1):
            pred = str(value)  # exact
        elif kind == 2:
            pred = f"{value:,}"  # thousands separators
        elif kind == 3:
            pred = f"{value}.0"
        else:
            pred = str(value + rng.randint(1, 50))  # wrong
        reasoning = f"Step {i}: we compute {value} + {i} - {i} = {value}."
        completions.append(f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n\\boxed{{{pred}}}\n</answer>")
        golds.append(gold)
    return completions, golds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=5.0)
    args = ap.parse_args()

    grader = graders.math_verify(fast_numeric=False)  # every answer through math-verify (worst case)
    grader.prepare()
    # serial baseline: a fresh set of strings (no cache hits), in the main thread
    c1, g1 = make_answers(args.n, seed=1)
    serial = grade_many(grader, c1, g1, timeout_s=args.timeout, in_process=True)
    c2, g2 = make_answers(args.n, seed=2)
    t0 = time.perf_counter()
    with GradingPool(workers=args.workers) as pool:
        start = time.perf_counter() - t0
        pooled = grade_many(grader, c2, g2, timeout_s=args.timeout, pool=pool)
        # steady state: the workers are already running (RL loop usage)
        c3, g3 = make_answers(args.n, seed=3)
        warm = grade_many(grader, c3, g3, timeout_s=args.timeout, pool=pool)
    print(f"answers            {args.n}   (cores: {__import__('os').cpu_count()}, workers: {args.workers})")
    print(f"in-process serial  {serial.answers_per_s:8.0f} answers/s  ({serial.seconds:.2f} s)  accuracy {sum(serial.scores) / args.n:.3f}")
    print(f"pool (incl. start) {pooled.answers_per_s:8.0f} answers/s  ({pooled.seconds:.2f} s, pool object {start * 1e3:.1f} ms)  accuracy {sum(pooled.scores) / args.n:.3f}")
    print(f"pool (warm)        {warm.answers_per_s:8.0f} answers/s  ({warm.seconds:.2f} s)  timeouts {warm.timeouts} errors {warm.errors}")
    print(f"ratio pool/serial  {pooled.answers_per_s / serial.answers_per_s:.2f}x (cold)  {warm.answers_per_s / serial.answers_per_s:.2f}x (warm)")
    # the default grader decides plain-number pairs without math-verify (fast_numeric=True)
    c4, g4 = make_answers(args.n, seed=4)
    default = grade_many(graders.math_verify(), c4, g4, timeout_s=args.timeout, workers=args.workers)
    print(f"default grade_many {default.answers_per_s:8.0f} answers/s  (math_verify(), numeric answers decided by quick_score "
          f"in-process)  accuracy {sum(default.scores) / args.n:.3f}")
    fast = grade_many(graders.gsm8k(), c1, g1)
    print(f"gsm8k numeric      {fast.answers_per_s:8.0f} answers/s  (in-process, no math-verify)")


if __name__ == "__main__":
    main()
