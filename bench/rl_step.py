"""Benchmark: RL step time of GRPO, GRPO + resample and IGPO on the tiny model, broken down by stage.

    python bench/rl_step.py [--steps 4 --repeats 2 --threads 1 --clock wall|cpu -b BINDING ...]

Runs the tiny recipes (``recipes/tiny/grpo.gin``, ``tiny/grpo_resample.gin``, ``tiny/igpo.gin``: G = 4, L = 32, 2
prompts per step, mu = 2) through the real loop (:func:`igpo_kit.rl.trainer.train_rl`) in this one process, the three
methods interleaved ``--repeats`` times; each run makes ``--steps`` rollout batches, the first is dropped as warm-up.
Reported per rollout batch (median over runs of the per-run mean): rollout (plain sampler call), inpainting (the extra
sampler call for all-wrong groups: with hints for IGPO, without for resample), grading, log-probs (pi_old + pi_ref +
entropies, once per batch), update (mu optimizer steps), step (all of it), and the rollouts made per batch.

"Equal rollout counts": all three start from the same prompts x G rollouts; GRPO + resample and IGPO spend the same
extra G rollouts per all-wrong group (App. L's sample-matched comparison). The random tiny model is always wrong, so
every group triggers: this is the worst case for the rescue's overhead (2x rollouts); its completions hold no
``\\boxed{}``, so math-verify grades them on its in-process fast path and grading costs ~0 here (real completions
go through the grading pool). No thresholds: it prints ratios.

``--clock cpu`` times the stages with this process's CPU time instead of wall time (use it with ``--threads 1`` on a
shared, loaded machine: the figures then measure work, not contention; grading in worker processes is not counted).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

METHODS = {"grpo": "tiny/grpo.gin", "grpo_resample": "tiny/grpo_resample.gin", "igpo": "tiny/igpo.gin"}
PARTS = ("rollout_s", "inpaint_s", "grading_s", "logprob_s", "update_s", "step_s")


class _CpuClock:
    """``time`` with ``perf_counter`` replaced by this process's CPU time (``--clock cpu``)."""

    perf_counter = staticmethod(time.process_time)

    def __getattr__(self, name):
        return getattr(time, name)


def run_once(recipe: str, steps: int, bindings: list[str], root: Path) -> list[dict]:
    from igpo_kit import config as cfg
    from igpo_kit.runs import Run

    config = cfg.parse(recipe, bindings=[f"entry.rl.max_steps = {2 * steps}", "entry.rl.inner_iters = 2",
                                         "entry.rl.checkpoint_every = 1000000", *bindings])
    run = Run(Path(tempfile.mkdtemp(dir=root)))
    with contextlib.redirect_stderr(io.StringIO()):  # the loop's live view
        cfg.call_job(config, run=run)
    return run.metrics()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=4, help="rollout batches per run (the first is warm-up)")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved runs per method")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: the tiny model gains nothing from more)")
    ap.add_argument("-b", "--bind", action="append", default=[], help="extra gin binding for every method")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="time stages by wall or CPU time")
    args = ap.parse_args(argv)
    if args.steps < 2:
        ap.error("--steps must be >= 2 (the first rollout batch is warm-up)")

    import torch

    torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        import igpo_kit.rl.rollout as rollout_mod
        import igpo_kit.rl.trainer as trainer_mod

        rollout_mod.time = trainer_mod.time = _CpuClock()
    per_run: dict[str, list[dict]] = {m: [] for m in METHODS}
    rollouts: dict[str, list[float]] = {m: [] for m in METHODS}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for method, recipe in METHODS.items():
                rows = run_once(recipe, args.steps, args.bind, Path(tmp))[1:]
                per_run[method].append({p: statistics.mean(r[p] for r in rows) for p in PARTS})
                rollouts[method].append(statistics.mean(r["rollouts_sampled"] for r in rows))
    med = {m: {p: statistics.median(run[p] for run in per_run[m]) for p in PARTS} for m in METHODS}
    n_roll = {m: statistics.median(rollouts[m]) for m in METHODS}

    print(f"RL step time on the tiny model (CPU, {args.threads} threads, {args.clock} clock, G=4, L=32, 2 prompts/step,"
          f" mu=2; median of {args.repeats} runs x {args.steps - 1} batches, seconds per rollout batch)")
    head = f"{'method':<15}{'rollouts':>9}" + "".join(f"{p[:-2]:>10}" for p in PARTS)
    print(head)
    for m in METHODS:
        print(f"{m:<15}{n_roll[m]:>9.0f}" + "".join(f"{med[m][p]:>10.3f}" for p in PARTS))
    ratio = med["igpo"]["step_s"] / med["grpo"]["step_s"]
    ratio_rs = med["igpo"]["step_s"] / med["grpo_resample"]["step_s"]
    print(f"IGPO / GRPO step time: {ratio:.2f}x    IGPO / GRPO+resample: {ratio_rs:.2f}x")
    out = {"seconds": med, "rollouts_per_step": n_roll, "igpo_over_grpo": ratio, "igpo_over_resample": ratio_rs,
           "threads": args.threads, "clock": args.clock, "steps": args.steps, "repeats": args.repeats}
    if args.json:
        print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
