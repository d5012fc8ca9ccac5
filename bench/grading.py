"""Grading: each grader's accuracy on the labelled LLaDA-style fixture, and ``igpo-kit grade`` throughput.

    python bench/grading.py [--repeats 3] [--n 1600] [--benchmarks ../shared/data/benchmarks] [--skip-throughput]

1. Accuracy: every correctness grader on ``tests/fixtures/grading/llada_style.jsonl`` (built by
   ``bench/grading_fixture.py``), overall and per (source, failure class): the share of items whose verdict
   (score > 0) equals the label.
2. Throughput, answers/s of wall-clock time on ``--n`` fresh LLaDA-style answers (``grading_fixture.build``;
   the fixture cycled when ``--benchmarks`` is absent):
   * cold: ``igpo-kit grade FILE --grader math --json --workers W`` as a new process (start-up, imports, warm-up
     and grading included), W = 1 and 2, the runs interleaved ``--repeats`` times;
   * warm: the same answers graded again through one :class:`GradingPool` kept across calls, as the RL loop
     does (workers forked once, math-verify already imported and warmed): a second, distinct answer set.
   The load average is printed with every figure: other processes on the machine slow everything down, so
   each cold run also reports its CPU time, main process and workers apart; main + workers/W (the critical path
   when every process has a core of its own) is the wall time it would take on idle cores (interpreter start-up
   included, teardown after ``main`` excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import grading_fixture  # noqa: E402

from igpo_kit.grading import GradingPool, grade_many, graders  # noqa: E402

GRADERS = ["math", "gsm8k", "math_verify", "d1", "official"]


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def accuracy_table(rows: list[dict]) -> None:
    built = {name: getattr(graders, name)() for name in GRADERS}
    ok: dict[tuple[str, str], Counter] = defaultdict(Counter)
    count: Counter = Counter()
    for r in rows:
        key = (r["source"], r["class"])
        count[key] += 1
        for name, g in built.items():
            hit = (g.score(r["completion"], r["gold"]) > 0) == r["label"]
            ok[key][name] += hit
            ok[("all", "")][name] += hit
            ok[(r["source"], "(all)")][name] += hit
    count[("all", "")] = len(rows)
    for src in ("gsm8k", "math500"):
        count[(src, "(all)")] = sum(1 for r in rows if r["source"] == src)
    print(f"accuracy vs labels on {len(rows)} LLaDA-style items (tests/fixtures/grading/llada_style.jsonl)\n")
    print("| source | class | n | " + " | ".join(GRADERS) + " |")
    print("|---|---|---|" + "---|" * len(GRADERS))
    order = [("all", "")] + [(s, "(all)") for s in ("gsm8k", "math500")]
    order += sorted(k for k in count if k not in order)
    for key in order:
        n = count[key]
        cells = []
        best = max(ok[key][g] for g in GRADERS)
        for g in GRADERS:
            cell = f"{100 * ok[key][g] / n:.1f}"
            cells.append(f"**{cell}**" if ok[key][g] == best and key[1] in ("", "(all)") else cell)
        print(f"| {key[0]} | {key[1]} | {n} | " + " | ".join(cells) + " |")
    print()


def _load() -> str:
    return "load %.2f %.2f %.2f" % os.getloadavg()


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# the CLI, reporting at exit its own CPU time and its (reaped) grading workers'
_CLI = """import atexit, resource, sys
def _cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    sys.stderr.write(f"\\nCPU {s.ru_utime + s.ru_stime} {c.ru_utime + c.ru_stime}\\n")
atexit.register(_cpu)
from igpo_kit.cli.main import main
main()
"""


def cold_run(path: Path, workers: int, grader: str = "math") -> tuple[float, float, float, dict]:
    """(wall s, CPU s of the command itself, CPU s of its workers, its JSON result)."""
    cmd = [sys.executable, "-c", _CLI, "grade", str(path), "--grader", grader, "--json", "--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - t0
    own, kids = (float(x) for x in r.stderr.strip().splitlines()[-1].split()[1:])
    return wall, own, kids, json.loads(r.stdout)


def throughput(args) -> None:
    if (args.benchmarks / "gsm8k_test.jsonl").exists():
        sets = [grading_fixture.build(args.benchmarks, n=args.n, seed=s) for s in (11, 12, 13)]
        origin = f"grading_fixture.build(n={args.n}, seeds 11-13)"
    else:
        base = load(grading_fixture.FIXTURE)
        sets = [[base[(i + s * 7) % len(base)] for i in range(args.n)] for s in range(3)]
        origin = "the fixture cycled (no --benchmarks: repeated answers, parse caches help)"
    g = graders.math()
    undecided = sum(g.quick_score(r["completion"], r["gold"]) is None for r in sets[0])
    print(f"throughput: {args.n} answers ({origin}); {undecided} need math-verify, the rest are decided by the "
          f"fast paths; {os.cpu_count()} cores\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "answers.jsonl"
        grading_fixture.write(sets[0], path)
        walls: dict = {1: [], 2: [], "math_verify": []}
        cpus: dict = {1: [], 2: [], "math_verify": []}
        for rep in range(args.repeats):
            for w in ((2, 1) if rep % 2 else (1, 2)) + ("math_verify",):
                before = _load()
                if w == "math_verify":  # the previous default grader, same file, same load
                    wall, own, kids, res = cold_run(path, 2, "math_verify")
                    kids /= 2
                else:
                    wall, own, kids, res = cold_run(path, w)
                    kids /= w
                walls[w].append(wall)
                cpus[w].append(own + kids)
                print(f"  cold  {'workers=' + str(w) if w != 'math_verify' else 'math_verify (2 workers)'} run "
                      f"{rep + 1}: {wall:5.2f} s wall = {args.n / wall:6.0f} answers/s; critical-path CPU "
                      f"{own + kids:.2f} s (grading {res['answers_per_s']:.0f}/s; {before})")
        for w in (1, 2, "math_verify"):
            best, med = min(walls[w]), sorted(walls[w])[len(walls[w]) // 2]
            cpu = sorted(cpus[w])[len(cpus[w]) // 2]
            label = f"workers={w}" if w != "math_verify" else "math_verify (previous default, 2 workers)"
            print(f"cold {label}: best {args.n / best:.0f} answers/s ({best:.2f} s), median {args.n / med:.0f} "
                  f"answers/s ({med:.2f} s) over {len(walls[w])} runs; critical-path CPU (main + workers/W: the "
                  f"wall time on idle cores) median {cpu:.2f} s = {args.n / cpu:.0f} answers/s")
        mid = args.repeats // 2
        print(f"cold math (2 workers) vs math_verify (2 workers), same file and load: "
              f"{sorted(walls['math_verify'])[mid] / sorted(walls[2])[mid]:.2f}x faster (median wall)")
    print()
    comps = [[r["completion"] for r in s] for s in sets]
    golds = [[r["gold"] for r in s] for s in sets]
    for w in (1, 2):
        with GradingPool(workers=w) as pool:
            first = grade_many(g, comps[1], golds[1], pool=pool, workers=w)
            before = _load()
            warm = grade_many(g, comps[2], golds[2], pool=pool, workers=w)
        print(f"warm  workers={w}: {warm.answers_per_s:6.0f} answers/s ({warm.seconds:.2f} s; first call in this "
              f"process {first.answers_per_s:.0f}/s; {before}; timeouts {warm.timeouts})")
    # same process, interleaved: the undecided answers only, serial in the main thread vs the warm 2-worker pool
    und = [[i for i, (c, x) in enumerate(zip(cs, gs)) if g.quick_score(c, x) is None] for cs, gs in zip(comps, golds)]
    serial_s, pool_s = [], []
    with GradingPool(workers=2) as pool:
        grade_many(g, [comps[0][i] for i in und[0]], [golds[0][i] for i in und[0]], pool=pool, in_process=False)
        for rep in range(args.repeats):
            for k in (1, 2) if rep % 2 else (2, 1):
                cs, gs = [comps[k][i] for i in und[k]], [golds[k][i] for i in und[k]]
                if k == 1:
                    serial_s.append(grade_many(g, cs, gs, in_process=True).seconds / len(cs))
                else:
                    pool_s.append(grade_many(g, cs, gs, pool=pool, in_process=False).seconds / len(cs))
    s_med, p_med = sorted(serial_s)[len(serial_s) // 2], sorted(pool_s)[len(pool_s) // 2]
    print(f"math-verify answers only: serial {1e3 * s_med:.1f} ms/answer, warm 2-worker pool {1e3 * p_med:.1f} "
          f"ms/answer: pool/serial speed {s_med / p_med:.2f}x (medians of {args.repeats}; {_load()})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1600)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--benchmarks", type=Path, default=grading_fixture.BENCHMARKS)
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()
    accuracy_table(load(grading_fixture.FIXTURE))
    if not args.skip_throughput:
        throughput(args)


if __name__ == "__main__":
    main()
