"""Benchmark (issue 11 a): rollout tokens/s of the exact sampler vs the dual-cache sampler, with and without
Fast-dLLM's confidence threshold, in one process, interleaved, median of ``--repeats``.

    python bench/fast_sampler.py --config tiny      # quickstart shapes: L 64, block 32, 32 steps, batch 16 (2 x G 8)
    python bench/fast_sampler.py --config wide      # d_model 512, 4 layers, vocab 126464, L 256, block 32, 128 steps
    python bench/fast_sampler.py --config wide_deep --samplers exact,dual_cache   # d_model 768, 8 layers, same decoding
    python bench/fast_sampler.py --config tiny --model-path runs/quickstart/_cache/sft-<key>/model   # trained
    python bench/fast_sampler.py --config llada8b   # CUDA: LLaDA-8B shapes, bf16 (the GPU check)
    python bench/fast_sampler.py --config wide --gen-length 64 \
        --samplers exact,exact_fullhead,dual_cache,dual_cache_fullhead   # the LM head on the masked rows vs the block

Samplers (same prompts, same settings): ``exact`` (``sampler.low_confidence``), ``exact+thr`` (its ``threshold``),
``dual_cache`` and ``dual_cache+thr`` (``sampler.dual_cache``); ``exact_fullhead`` and ``dual_cache_fullhead`` run
the LM head over the whole block and pick the masked rows afterwards (the path before the head ran on the masked rows
only: the same tokens, :func:`igpo_kit.sampling.generate.full_head`). Per sampler: tokens/s (batch x L generated
tokens over the median wall time of one call), the speed-up over ``exact``, forward passes per call (NFE) and the
share of completion tokens equal to the exact sampler's (greedy; random weights make that share meaningless for
accuracy: see ``bench/sampler_accuracy.py`` for a trained model).

Random weights: every confidence is ~1/V, so a threshold commits one token per step (more steps than the exact
schedule); its speed is only meaningful on a trained model (``--model-path``): on random weights compare
``--samplers exact,dual_cache`` and scale by the NFE a trained model needs. CPU runs have no warm-up call (the
first of the interleaved rounds is as warm as the others), CUDA runs one per sampler. The model is the native LLaDA class
(:mod:`igpo_kit.models.llada`) at the stated sizes, random init (seeded), float32 on CPU. The load average is printed
with the times: on a shared machine compare the in-process ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

CONFIGS = {
    # quickstart shapes: the tiny model's sizes, its char vocabulary; 2 prompts x G 8, L 64, block 32, 32 steps
    "tiny": dict(d_model=64, n_layers=2, n_heads=4, mlp=256, vocab=None, gen_length=64, block=32, steps=32, batch=16,
                 prompt=110, threshold=0.9),
    # a wide CPU config at LLaDA's vocabulary (issue 11): L 256, block 32, 128 steps (RL: L / 2)
    "wide": dict(d_model=512, n_layers=4, n_heads=8, mlp=1376, vocab=126464, gen_length=256, block=32, steps=128,
                 batch=2, prompt=64, threshold=0.9),
    # the same vocabulary and decoding with a deeper, wider trunk: the trunk's FLOPs per position are 0.58x the LM
    # head's instead of wide's 0.20x (LLaDA-8B: 13.5x), so, as at 8B, the cache has trunk work to save
    "wide_deep": dict(d_model=768, n_layers=8, n_heads=12, mlp=2048, vocab=126464, gen_length=256, block=32,
                      steps=128, batch=2, prompt=64, threshold=0.9),
    # LLaDA-8B shapes (CUDA, bf16)
    "llada8b": dict(d_model=4096, n_layers=32, n_heads=32, mlp=12288, vocab=126464, gen_length=256, block=32,
                    steps=128, batch=8, prompt=128, threshold=0.9),
}


def trunk_to_head(cfg: dict, vocab: int) -> float:
    """FLOPs per position of the trunk (LLaDA blocks: q, k, v, o and the 3-matrix MLP) over those of the LM head.

    The cache saves trunk work only (a cached step still runs the head on the block's masked rows), so the bigger
    this ratio the closer the dual cache's speed-up gets to the positions ratio (prompt + L) / block.
    """
    d = cfg["d_model"]
    return cfg["n_layers"] * (4 * d * d + 3 * d * cfg["mlp"]) / (d * vocab)


def native_llada(d_model: int, n_layers: int, n_heads: int, mlp: int, vocab: int | None, seed: int = 0,
                 device: str = "cpu", dtype: torch.dtype = torch.float32):
    """A randomly initialised native LLaDA (LLaDA-8B-Instruct's config.json with its sizes replaced)."""
    from igpo_kit.models.tiny import tiny

    model = tiny(hidden_size=d_model, num_layers=n_layers, num_heads=n_heads, intermediate_size=mlp,
                 architecture="llada", vocab_size=vocab, seed=seed)
    model.network.to(device=device, dtype=dtype)
    return model


SAMPLERS = ("exact", "exact+thr", "dual_cache", "dual_cache+thr", "exact_fullhead", "dual_cache_fullhead")
DEFAULT_SAMPLERS = SAMPLERS[:4]  # the *_fullhead ones (the LM head on the whole block) only on request


def full_head_variant(sampler):
    """``sampler`` with the LM head over the whole block, its masked rows picked afterwards (the same tokens)."""
    import dataclasses

    from igpo_kit.sampling.generate import full_forward, full_head

    base = type(sampler)

    class FullHead(base):
        def _forward(self, model):
            return full_head(base._forward(self, model) or full_forward)

    return FullHead(**{f.name: getattr(sampler, f.name) for f in dataclasses.fields(sampler)})


def samplers(cfg: dict, threshold: float, names=SAMPLERS) -> dict:
    from igpo_kit.sampling.dual_cache import dual_cache
    from igpo_kit.sampling.generate import low_confidence

    common = dict(gen_length=cfg["gen_length"], block_length=cfg["block"], steps=cfg["steps"], temperature=0.0)
    every = {
        "exact": low_confidence(**common),
        "exact+thr": low_confidence(**common, threshold=threshold),
        "dual_cache": dual_cache(**common),
        "dual_cache+thr": dual_cache(**common, threshold=threshold),
        "exact_fullhead": full_head_variant(low_confidence(**common)),
        "dual_cache_fullhead": full_head_variant(dual_cache(**common)),
    }
    return {n: every[n] for n in names}


def bench(model, prompts: torch.Tensor, mask: torch.Tensor | None, samplers_: dict, repeats: int) -> list[dict]:
    """Interleaved rounds (one call of each sampler per round), median wall time per sampler."""
    device = model.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        for s in samplers_.values():  # warm-up (CUDA context, kernels, allocator)
            s(model, prompts, attention_mask=mask)
    times: dict[str, list[float]] = {n: [] for n in samplers_}
    outs: dict[str, object] = {}
    for _ in range(repeats):
        for name, s in samplers_.items():
            sync()
            t0 = time.perf_counter()
            outs[name] = s(model, prompts, attention_mask=mask)
            sync()
            times[name].append(time.perf_counter() - t0)
    gen_tokens = prompts.shape[0] * next(iter(samplers_.values())).gen_length
    base = statistics.median(times["exact"])
    exact = outs["exact"].completions
    rows = []
    for name in samplers_:
        sec = statistics.median(times[name])
        same = float((outs[name].completions == exact).float().mean())
        rows.append(dict(sampler=name, tok_s=gen_tokens / sec, speedup=base / sec, seconds=sec, nfe=outs[name].nfe,
                         same_as_exact=same, times=times[name]))
        masked_rows = outs.get(name.removesuffix("_fullhead"))
        if name.endswith("_fullhead") and masked_rows is not None:  # the head on the masked rows: the same tokens?
            rows[-1]["same_as_masked_rows"] = bool(torch.equal(outs[name].sequences, masked_rows.sequences))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    ap.add_argument("--model-path", default=None, help="a trained model.tiny(architecture='llada') directory")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--gen-length", type=int, default=None,
                    help="a shorter L (a multiple of the block; steps = L / 2, the RL ratio)")
    ap.add_argument("--samplers", default=",".join(DEFAULT_SAMPLERS),
                    help=f"comma-separated subset of {', '.join(SAMPLERS)} (exact is required)")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = dict(CONFIGS[args.config])
    if args.batch:
        cfg["batch"] = args.batch
    if args.gen_length:
        cfg["gen_length"], cfg["steps"] = args.gen_length, args.gen_length // 2
    threshold = args.threshold or cfg["threshold"]
    cuda = args.config == "llada8b"
    if cuda and not torch.cuda.is_available():
        print("--config llada8b needs CUDA", file=sys.stderr)
        return 2
    if args.model_path:
        from igpo_kit.models.tiny import tiny

        model = tiny(path=args.model_path)
        what = f"trained {args.model_path}"
    else:
        model = native_llada(cfg["d_model"], cfg["n_layers"], cfg["n_heads"], cfg["mlp"], cfg["vocab"],
                             device="cuda" if cuda else "cpu", dtype=torch.bfloat16 if cuda else torch.float32)
        what = "random init"
    from igpo_kit.data.synthetic import arithmetic

    if model.tokenizer is not None and model.vocab_size < 1000:
        from igpo_kit.components.prompt import plain

        tmpl = plain(prefill="<reasoning>")
        rows = [model.chat_prompt(tmpl.messages(ex), tmpl.prefill) for ex in arithmetic(n=cfg["batch"], seed=5)]
        width = max(map(len, rows))
        prompts = torch.tensor([[model.pad_id] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    else:
        g = torch.Generator().manual_seed(1)
        prompts = torch.randint(0, min(model.vocab_size, 126000), (cfg["batch"], cfg["prompt"]), generator=g)
        mask = torch.ones_like(prompts)
        mask[0, : cfg["prompt"] // 4] = 0  # one left-padded row
    prompts, mask = prompts.to(model.device), mask.to(model.device)
    params = sum(p.numel() for p in model.network.parameters()) / 1e6
    load = os.getloadavg()
    print(f"model: native LLaDA ({what}), {params:.2f} M params, vocab {model.vocab_size}, {model.device}, "
          f"{torch.get_num_threads()} threads; batch {prompts.shape[0]}, prompt {prompts.shape[1]}, "
          f"L {cfg['gen_length']}, block {cfg['block']}, steps {cfg['steps']}, threshold {threshold}, greedy; "
          f"median of {args.repeats}, interleaved")
    if not args.model_path:
        print(f"trunk / LM head FLOPs per position: {trunk_to_head(cfg, model.vocab_size):.2f} (LLaDA-8B: "
              f"{trunk_to_head(CONFIGS['llada8b'], 126464):.1f})")
    names = [n for n in args.samplers.split(",") if n]
    if "exact" not in names or set(names) - set(SAMPLERS):
        print(f"--samplers: a subset of {', '.join(SAMPLERS)} including exact", file=sys.stderr)
        return 2
    rows = bench(model, prompts, mask, samplers(cfg, threshold, names), args.repeats)
    load_after = os.getloadavg()
    print(f"load average (1 min) before / after: {load[0]:.1f} / {load_after[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'sampler':<20} {'tokens/s':>10} {'vs exact':>9} {'NFE':>5} {'same tokens as exact':>22}")
    for r in rows:
        note = {True: "  (= its masked-rows run)", False: "  (DIFFERS from its masked-rows run)"}.get(
            r.get("same_as_masked_rows"), "")
        print(f"{r['sampler']:<20} {r['tok_s']:>10.1f} {r['speedup']:>8.2f}x {r['nfe']:>5} {r['same_as_exact']:>21.1%}"
              f"{note}")
    if args.out:
        Path(args.out).write_text(json.dumps(dict(config=args.config, cfg=cfg, model=what, threshold=threshold,
                                                  load=[load, load_after], rows=rows), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
