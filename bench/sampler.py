"""Benchmark: the kit's LLaDA sampler (fast and exact noise) vs the reference transcription.

    python bench/sampler.py [--gen-length 128 --block-length 32 --batch 8 --repeats 3]
    python bench/sampler.py --llada-shapes            # CUDA only: random LLaDA-8B-shaped model in bf16

Reports tokens/s (generated tokens = batch x gen_length per call, median over ``--repeats`` timed runs after one
warm-up), the ratio kit / reference (runs interleaved, median), whether the tokens match the reference (greedy tau = 0 for both modes; exact
mode at tau = 1.2 under the same generator seed; fast mode at tau > 0 samples the same distribution from a
different stream, so it is not compared), and on CUDA the peak GPU memory of each run.

CPU default: a tiny bidirectional Gemma (hidden 256, 4 layers, the tiny char vocabulary), one chat prompt repeated
``--batch`` times (prompts x G). ``--llada-shapes``: hidden 4096, 32 layers, 32 heads, intermediate 12288,
vocab 126464 (LLaDA-8B's shapes) through the same GemmaConfig route, bf16 on CUDA, gen lengths 256 and 512.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from igpo_kit.models.base import DiffusionLM  # noqa: E402
from igpo_kit.sampling import reference  # noqa: E402
from igpo_kit.sampling.generate import generate  # noqa: E402

LLADA = dict(hidden=4096, layers=32, heads=32, intermediate=12288, vocab=126464, mask_id=126336, eos_id=126081)


def tiny_model(hidden: int, layers: int, vocab: int | None = None) -> DiffusionLM:
    """The tiny offline model; ``vocab`` > its own enlarges the embedding and LM head (extra ids are never
    prompted, only predicted) to show the per-step vocabulary cost of sampling, which dominates at LLaDA's 126k."""
    from igpo_kit.models.tiny import tiny

    model = tiny(hidden_size=hidden, num_layers=layers, num_heads=4, intermediate_size=4 * hidden, seed=0)
    if vocab and vocab > model.vocab_size:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            model.network.resize_token_embeddings(vocab, mean_resizing=False)
    return model


def llada_shaped_model() -> DiffusionLM:
    """A randomly initialised model with LLaDA-8B's shapes (bidirectional Gemma), bf16 on CUDA."""
    from transformers import GemmaConfig, GemmaForCausalLM

    config = GemmaConfig(
        vocab_size=LLADA["vocab"],
        hidden_size=LLADA["hidden"],
        num_hidden_layers=LLADA["layers"],
        num_attention_heads=LLADA["heads"],
        num_key_value_heads=LLADA["heads"],
        head_dim=LLADA["hidden"] // LLADA["heads"],
        intermediate_size=LLADA["intermediate"],
        max_position_embeddings=4096,
        use_bidirectional_attention=True,
        tie_word_embeddings=False,
        pad_token_id=LLADA["eos_id"],
        eos_token_id=LLADA["eos_id"],
        bos_token_id=126080,
        attn_implementation="sdpa",
    )
    with torch.random.fork_rng(devices=[torch.cuda.current_device()]), torch.device("cuda"):
        torch.manual_seed(0)
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)
        try:
            network = GemmaForCausalLM(config)
        finally:
            torch.set_default_dtype(default)
    return DiffusionLM(
        network=network.eval(), tokenizer=None, mask_id=LLADA["mask_id"], eos_id=LLADA["eos_id"],
        logits_slice=True, suppress_mask=True, name="llada-shapes",
    )


def bench_one(model: DiffusionLM, prompts: torch.Tensor, gen_length: int, block_length: int, steps: int,
              repeats: int, seed: int = 0) -> list[dict]:
    """Time the reference and the kit (exact, fast) at tau = 0 and 1.2. Runs are interleaved (one of each method
    per round, ``repeats`` rounds, median) so that load drift on a shared machine hits all methods alike."""
    device = model.device
    n_tokens = prompts.shape[0] * gen_length

    def kit(noise: str, tau: float):
        def run():
            g = torch.Generator(device=device).manual_seed(seed)
            return generate(model, prompts, gen_length=gen_length, block_length=block_length, steps=steps,
                            temperature=tau, generator=g, noise=noise).sequences
        return run

    def ref(tau: float):
        def run():
            g = torch.Generator(device=device).manual_seed(seed)
            return reference.generate(model, prompts, steps=steps, gen_length=gen_length, block_length=block_length,
                                      temperature=tau, generator=g)
        return run

    methods = [(tau, name, fn) for tau in (0.0, 1.2)
               for name, fn in (("reference", ref(tau)), ("kit exact", kit("exact", tau)), ("kit fast", kit("fast", tau)))]
    if device.type == "cuda":
        for _, _, fn in methods:  # warm-up: CUDA context, kernels, allocator
            fn()
    else:
        methods[0][2]()
    times = {i: [] for i in range(len(methods))}
    peaks: dict[int, int | None] = {i: None for i in range(len(methods))}
    outs = {}
    for _ in range(repeats):
        for i, (_, _, fn) in enumerate(methods):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            t0 = time.perf_counter()
            outs[i] = fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                peaks[i] = max(peaks[i] or 0, torch.cuda.max_memory_allocated(device))
            times[i].append(time.perf_counter() - t0)

    rows = []
    for i, (tau, name, _) in enumerate(methods):
        ref_i = [j for j, (t, n, _) in enumerate(methods) if t == tau and n == "reference"][0]
        sec, ref_sec = statistics.median(times[i]), statistics.median(times[ref_i])
        if name == "reference":
            match = "-"
        elif tau == 0 or name == "kit exact":
            same = torch.equal(outs[i], outs[ref_i])
            match = "yes" if same else f"NO ({int((outs[i] != outs[ref_i]).sum())} tokens differ)"
        else:
            match = "n/a (same law, other stream)"
        rows.append(dict(tau=tau, method=name, tok_s=n_tokens / sec, ratio=ref_sec / sec, match=match, peak=peaks[i]))
    return rows


def print_rows(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'tau':>4}  {'method':<10} {'tokens/s':>10} {'kit/ref':>8}  {'peak GPU':>9}  tokens match reference")
    for r in rows:
        peak = f"{r['peak'] / 2**30:.2f} GiB" if r["peak"] is not None else "-"
        print(f"{r['tau']:>4}  {r['method']:<10} {r['tok_s']:>10.1f} {r['ratio']:>7.2f}x  {peak:>9}  {r['match']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gen-length", type=int, default=128)
    ap.add_argument("--block-length", type=int, default=32)
    ap.add_argument("--steps", type=int, default=None, help="default: gen_length // 2 (the RL setting)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=None, help="enlarge the tiny model's vocabulary (CPU)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    ap.add_argument("--prompt-length", type=int, default=128, help="--llada-shapes: random prompt length")
    ap.add_argument("--llada-shapes", action="store_true", help="LLaDA-8B-shaped random model, bf16, CUDA")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.llada_shapes:
        if not torch.cuda.is_available():
            print("--llada-shapes needs CUDA", file=sys.stderr)
            return 2
        model = llada_shaped_model()
        print(f"model: LLaDA-8B shapes (random init), bf16, {torch.cuda.get_device_name()}, "
              f"{sum(p.numel() for p in model.network.parameters()) / 1e9:.2f} B params")
        g = torch.Generator().manual_seed(1)
        prompts = torch.randint(0, 126000, (args.batch, args.prompt_length), generator=g).cuda()
        for gen_length in (256, 512):
            steps = gen_length // 2
            rows = bench_one(model, prompts, gen_length, 32, steps, args.repeats)
            print_rows(f"batch {args.batch}, prompt {args.prompt_length}, gen_length {gen_length}, block 32, "
                       f"steps {steps}", rows)
        return 0

    model = tiny_model(args.hidden, args.layers, args.vocab)
    steps = args.steps or args.gen_length // 2
    prompt = model.chat_prompt([{"role": "user", "content": "Natalia sold 48 clips in April and half as many in "
                                 "May. How many in all?"}])
    prompts = torch.tensor([prompt] * args.batch)
    print(f"model: tiny bidirectional Gemma hidden {args.hidden}, {args.layers} layers, vocab {model.vocab_size}, "
          f"{sum(p.numel() for p in model.network.parameters()) / 1e6:.2f} M params, CPU, "
          f"{torch.get_num_threads()} threads")
    rows = bench_one(model, prompts, args.gen_length, args.block_length, steps, args.repeats)
    print_rows(f"batch {args.batch}, prompt {prompts.shape[1]}, gen_length {args.gen_length}, block "
               f"{args.block_length}, steps {steps}, median of {args.repeats}", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
