"""Benchmark (issue 11 b): does the fast sampler cost accuracy? Exact vs dual-cache, with and without Fast-dLLM's
confidence threshold, on TRAINED models, held-out problems, greedy and tau 1.2 (random weights say nothing).

    python bench/sampler_accuracy.py --model-path runs/quickstart/_cache/sft-<key>/model [--model-path ...]
        [--n 512 --group-size 8 --threshold 0.9 --out bench_accuracy.json]

    # a trained model with the cache interface, from scratch (the quickstart's SFT on the tiny native LLaDA,
    # cached like the quickstart's): --train-sft-steps 2000 [--train-sft-steps 4000] --sft-cache runs/_cache
    python bench/sampler_accuracy.py --train-sft-steps 2000 --train-sft-steps 4000

Held-out set: ``dataset.arithmetic(n, difficulty 2, split 'test')`` (the quickstart's test problems, disjoint from its
SFT and RL sets), the quickstart's prompt (``prompt.plain(prefill='<reasoning>')``), its decoding (L 64, block 32,
32 steps) and grader (``grader.math_verify``). Per model, sampler and temperature: accuracy (mean over problems of
the share of correct samples; greedy = one sample, tau 1.2 = G samples) with a 95 % bootstrap interval over problems,
the all-wrong rate at G (tau 1.2: problems whose G samples are all wrong; IGPO's trigger), the mean completion length
(tokens before the first EOS / EOT), forward passes per call and the generation time relative to the exact sampler
(same process). ``diff`` rows: paired differences to the exact sampler, bootstrap over the same problems.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

GEN = dict(gen_length=64, block_length=32, steps=32)  # the quickstart's rollout / evaluation decoding


def bootstrap_ci(values: torch.Tensor, resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``values [N]`` (one per problem) and its 95 % percentile bootstrap interval over problems."""
    g = torch.Generator().manual_seed(seed)
    v = values.double()
    idx = torch.randint(0, len(v), (resamples, len(v)), generator=g)
    means = v[idx].mean(1)
    return float(v.mean()), float(means.quantile(0.025)), float(means.quantile(0.975))


def samplers(threshold: float, temperature: float) -> dict:
    from igpo_kit.sampling.dual_cache import dual_cache
    from igpo_kit.sampling.generate import low_confidence

    return {
        "exact": low_confidence(**GEN, temperature=temperature),
        "exact+thr": low_confidence(**GEN, temperature=temperature, threshold=threshold),
        "dual_cache": dual_cache(**GEN, temperature=temperature),
        "dual_cache+thr": dual_cache(**GEN, temperature=temperature, threshold=threshold),
    }


def completion_lengths(model, completions: torch.Tensor) -> torch.Tensor:
    """Tokens before the first EOS / EOT of each row of ``completions [R, L]``."""
    stop = completions == model.eos_id
    if model.eot_id is not None:
        stop |= completions == model.eot_id
    first = torch.where(stop.any(1), stop.float().argmax(1), torch.tensor(completions.shape[1]))
    return first.float()


def run_sampler(model, sampler, prompts: list[list[int]], samples: int, batch_size: int, seed: int, grader, golds):
    """Generate ``samples`` completions per prompt and grade them: (correct [N, samples], lengths [N, samples],
    generation seconds, forward passes per call)."""
    from igpo_kit.grading.pool import grade_many
    from igpo_kit.models.base import left_pad

    jobs = [(i, s) for i in range(len(prompts)) for s in range(samples)]
    g = torch.Generator(device=model.device).manual_seed(seed)
    texts, lengths, nfe, seconds = [], [], [], 0.0
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        ids, mask = left_pad([prompts[i] for i, _ in chunk], model.pad_id if model.pad_id is not None else model.eos_id)
        t0 = time.perf_counter()
        out = sampler(model, ids.to(model.device), attention_mask=mask.to(model.device), generator=g)
        seconds += time.perf_counter() - t0
        nfe.append(out.nfe)
        lengths.append(completion_lengths(model, out.completions.cpu()))
        texts += [model.decode(row) for row in out.completions.tolist()]
    report = grade_many(grader, texts, [golds[i] for i, _ in jobs], timeout_s=5.0, workers=1)
    correct = torch.tensor([s > 0 for s in report.scores], dtype=torch.float64).view(len(prompts), samples)
    return correct, torch.cat(lengths).view(len(prompts), samples), seconds, sum(nfe) / len(nfe)


def evaluate_model(model, name: str, examples, threshold: float, group_size: int, batch_size: int,
                   seed: int, taus: tuple[float, ...] = (0.0, 1.2), only: tuple[str, ...] | None = None) -> list[dict]:
    from igpo_kit.components.grader import math_verify
    from igpo_kit.components.prompt import plain

    tmpl = plain(prefill="<reasoning>")
    prompts = [model.chat_prompt(tmpl.messages(ex), tmpl.prefill) for ex in examples]
    golds = [ex.answer for ex in examples]
    grader = math_verify()
    rows = []
    for tau in taus:
        samples = 1 if tau == 0 else group_size
        results = {}
        for sname, sampler in samplers(threshold, tau).items():
            if only and sname not in only and sname != "exact":  # exact is always run: the paired baseline
                continue
            correct, lengths, seconds, nfe = run_sampler(model, sampler, prompts, samples, batch_size, seed, grader,
                                                         golds)
            results[sname] = (correct, lengths, seconds, nfe)
            acc = bootstrap_ci(correct.mean(1))
            row = dict(model=name, tau=tau, samples=samples, sampler=sname, accuracy=acc,
                       mean_length=float(lengths.mean()), nfe_per_call=nfe, gen_seconds=seconds,
                       time_vs_exact=seconds / results["exact"][2])
            if samples > 1:
                row["all_wrong"] = bootstrap_ci((correct.sum(1) == 0).double())
            if sname != "exact":
                ex_correct = results["exact"][0]
                row["diff_accuracy"] = bootstrap_ci(correct.mean(1) - ex_correct.mean(1))
                if samples > 1:
                    row["diff_all_wrong"] = bootstrap_ci((correct.sum(1) == 0).double()
                                                         - (ex_correct.sum(1) == 0).double())
            rows.append(row)
            print(fmt(row), flush=True)
    return rows


def fmt(r: dict) -> str:
    def ci(t):
        return f"{t[0]:.3f} [{t[1]:.3f}, {t[2]:.3f}]"

    s = (f"{r['model']:<14} tau {r['tau']:<3} {r['sampler']:<15} acc {ci(r['accuracy'])}  "
         f"len {r['mean_length']:5.1f}  nfe/call {r['nfe_per_call']:5.1f}  time {r['time_vs_exact']:.2f}x exact")
    if "all_wrong" in r:
        s += f"  all-wrong@G {ci(r['all_wrong'])}"
    if "diff_accuracy" in r:
        s += f"  d_acc {ci(r['diff_accuracy'])}"
    if "diff_all_wrong" in r:
        s += f"  d_all_wrong {ci(r['diff_all_wrong'])}"
    return s


def train_quickstart_sft(steps: int, cache: Path, seed: int = 0, embedding_std: float | None = None):
    """The quickstart's SFT (its data, prompt and settings; ``steps`` optimizer steps) on the tiny native LLaDA
    (``model.tiny(architecture='llada')``: the cache interface), cached by content like the quickstart's."""
    from igpo_kit.components.prompt import plain
    from igpo_kit.data.synthetic import arithmetic
    from igpo_kit.models.tiny import tiny
    from igpo_kit.sft.cache import cached_sft

    model = tiny(architecture="llada", seed=seed, embedding_std=embedding_std)
    t0 = time.perf_counter()

    def log(rec):
        if rec["step"] % 250 == 0:
            print(f"  sft step {rec['step']}/{steps} loss {rec['loss']:.3f} [{time.perf_counter() - t0:.0f}s]",
                  flush=True)

    sft = cached_sft(model, arithmetic(n=8000, difficulty=2, seed=0), plain(prefill="<reasoning>"), cache, log=log,
                     max_length=192, batch_size=32, max_steps=steps, lr=4e-3, min_lr=2e-4, warmup_steps=50,
                     weight_decay=0.1, checkpoint_every=200, seed=0)
    model.network.eval()
    print(f"SFT {steps} steps: {sft.model_dir} ({'reused' if sft.reused else f'trained in {sft.seconds:.0f}s'})",
          flush=True)
    return model, sft.model_dir


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-path", action="append", default=[], help="a trained model.tiny directory (repeatable)")
    ap.add_argument("--train-sft-steps", action="append", type=int, default=[],
                    help="train (or reuse) the quickstart SFT with this many steps on the tiny native LLaDA")
    ap.add_argument("--sft-cache", default="runs/quickstart/_cache")
    ap.add_argument("--embedding-std", type=float, default=None,
                    help="model.tiny embedding_std of the model trained by --train-sft-steps (0.16: Gemma's scale)")
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--taus", default="0,1.2", help="temperatures (0 = greedy, one sample; else G samples)")
    ap.add_argument("--samplers", default="exact,exact+thr,dual_cache,dual_cache+thr",
                    help="comma-separated subset (exact always runs: the paired baseline)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from igpo_kit.data.synthetic import arithmetic
    from igpo_kit.models.tiny import tiny

    examples = arithmetic(n=args.n, difficulty=2, split="test")
    rows = []

    def evaluate(name, model, path):
        print(f"{name}: load average (1 min) {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        rows.extend(dict(r, path=path) for r in evaluate_model(model, name, examples, args.threshold,
                                                               args.group_size, args.batch_size, args.seed,
                                                               tuple(float(t) for t in args.taus.split(",")),
                                                               tuple(args.samplers.split(","))))
        print(f"{name}: load average (1 min) {os.getloadavg()[0]:.1f}", flush=True)
        if args.out:  # after every model: a long run leaves what it finished
            Path(args.out).write_text(json.dumps(dict(n=args.n, group_size=args.group_size, threshold=args.threshold,
                                                      decoding=GEN, rows=rows), indent=1))

    if not args.train_sft_steps and not args.model_path:
        ap.error("give --model-path or --train-sft-steps")
    for steps in args.train_sft_steps:  # each model is evaluated as soon as it is trained
        model, path = train_quickstart_sft(steps, Path(args.sft_cache), embedding_std=args.embedding_std)
        evaluate(f"sft{steps}", model, str(path))
    for path in args.model_path:
        evaluate(Path(path).parent.name[:14], tiny(path=path), path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
