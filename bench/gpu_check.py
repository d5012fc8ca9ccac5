"""The GPU check (issue 10): LLaDA-8B shapes on ONE H100/H200, at most ~8 minutes, nothing downloaded.

    python bench/gpu_check.py [--out gpu_check.json]      # CUDA: LLaDA-8B shapes, random bf16 weights
    python bench/gpu_check.py --smoke                     # the same code path, a tiny config on CPU (< 1 min; CI)

Model: the native LLaDA class (:mod:`igpo_kit.models.llada`, built through ``AutoConfig`` / ``AutoModel`` with
``model_type = "llada"``) at LLaDA-8B-Instruct's config.json sizes (d_model 4096, 32 layers, 32 heads, MLP 12288,
vocab 126464, untied head), random init (seeded), bf16 on the GPU. The tokenizer is built offline: LLaDA's chat
template and special ids (mask 126336, EOS 126081, EOT 126348) over a character vocabulary padded with reserved
tokens to 126464 ids. Random weights prove plumbing, memory and speed only: every rollout is wrong, so every
group triggers the inpainting rescue (the worst case of an IGPO step's cost).

Parts:

1. sampler: generated tokens/s (batch x L over the wall time of one call, after a warm-up call) and peak GPU memory
   (``max_memory_allocated`` of the call) at batch 8 and 64, L 256, block 32, for ``sampler.low_confidence`` (exact)
   and, when the model has a key/value cache, ``sampler.dual_cache``. Steps are REDUCED to 64 (the paper's RL uses
   128 = L / 2): the time per step is what matters; tokens/s at 128 steps is about half.
2. one IGPO step through the real loop (:func:`igpo_kit.rl.trainer.train_rl`): G 8, one prompt, L 256, block 32,
   64 steps, LoRA r 128 (alpha 64) on every linear of LLaDA, gradient checkpointing, DeepSpeed ZeRO-2
   (``recipes/deepspeed/zero2.json``, bf16 with fp32 master weights) on one GPU, mu = 1 inner step, KL beta 0.01:
   the wall time of its parts (rollout, inpaint, grading, log-prob = pi_old + pi_ref + entropies, update) from the
   run's ``metrics.jsonl``, the peak GPU memory of the whole step, and the LoRA checkpoint's size.
3. the dry-run memory estimate (:func:`igpo_kit.models.memory.estimate_peak`, what ``igpo-kit run --dry-run``
   prints) for each measured configuration next to the measured peak, and their ratio.

It prints a table and writes the figures as JSON (``--out``). On CPU (``--smoke``: the native class at d_model 64,
2 layers, the tiny character vocabulary, float32) nothing measures a device peak (RSS is not resettable per part),
so the memory columns hold the estimate only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

MASK_ID, EOS_ID, EOT_ID = 126336, 126081, 126348
#: LLaDA-8B-Instruct's config.json (the keys the native class reads)
LLADA_8B = dict(d_model=4096, n_heads=32, n_kv_heads=32, n_layers=32, mlp_hidden_size=12288, vocab_size=126464)
LLADA_FIXED = dict(activation_type="silu", block_type="llama", max_sequence_length=4096, rope=True,
                   rope_theta=500000.0, rope_full_precision=True, layer_norm_type="rms", rms_norm_eps=1e-5,
                   include_bias=False, include_qkv_bias=False, bias_for_layer_norm=False, weight_tying=False,
                   scale_logits=False, attention_dropout=0.0, init_std=0.02)
LLADA_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"]

CONFIGS = {
    "llada8b": dict(model=LLADA_8B, device="cuda", dtype=torch.bfloat16, prompt=128, gen_length=256, block=32,
                    steps=64, batches=(8, 64), group_size=8, lora_rank=128, lora_alpha=64, micro_batch_size=8),
    # the same code path on CPU: tiny sizes, the tiny character vocabulary, float32
    "smoke": dict(model=dict(d_model=64, n_heads=4, n_kv_heads=4, n_layers=2, mlp_hidden_size=128, vocab_size=None),
                  device="cpu", dtype=torch.float32, prompt=16, gen_length=32, block=16, steps=8, batches=(2, 4),
                  group_size=4, lora_rank=4, lora_alpha=8, micro_batch_size=2),
}


# --- model and tokenizer ---------------------------------------------------------------------------------------


def llada_tokenizer(vocab_size: int | None):
    """The tiny character tokenizer (LLaDA's chat template); with ``vocab_size`` (LLaDA's 126464) its EOS, mask and
    EOT move to LLaDA's ids and reserved tokens fill every other id, so any id the model predicts decodes."""
    from igpo_kit.models.tiny import CHARS, SPECIALS, build_tokenizer

    if vocab_size is None:
        return build_tokenizer()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    fixed = {"<|endoftext|>": EOS_ID, "<|mdm_mask|>": MASK_ID, "<|eot_id|>": EOT_ID}
    names = [None] * vocab_size
    for tok, i in fixed.items():
        names[i] = tok
    free = (i for i in range(vocab_size) if names[i] is None)
    for tok in [t for t in SPECIALS if t not in fixed] + list(dict.fromkeys(CHARS)):
        names[next(free)] = tok
    names = [n if n is not None else f"<|reserved_{i}|>" for i, n in enumerate(names)]
    core = Tokenizer(models.WordLevel({n: i for i, n in enumerate(names)}, unk_token="<|unk|>"))
    core.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<|endoftext|>", eos_token="<|endoftext|>",
                                  mask_token="<|mdm_mask|>", bos_token="<|startoftext|>", unk_token="<|unk|>",
                                  extra_special_tokens=["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"])
    tok.chat_template = build_tokenizer().chat_template
    return tok


def build_model(sizes: dict, device: str, dtype: torch.dtype, seed: int = 0):
    """A randomly initialised native LLaDA (``AutoModel`` of ``model_type = "llada"``) wrapped as a DiffusionLM.
    Returns ``(model, description)``."""
    import igpo_kit.models.llada  # noqa: F401  (registers model_type "llada" with the Auto classes)
    from transformers import AutoConfig, AutoModel

    from igpo_kit.models.base import DiffusionLM

    tok = llada_tokenizer(sizes["vocab_size"])
    vocab = sizes["vocab_size"] or len(tok)
    config = AutoConfig.for_model("llada", **{**LLADA_FIXED, **sizes, "vocab_size": vocab, "embedding_size": vocab},
                                  mask_token_id=tok.mask_token_id, eos_token_id=tok.eos_token_id,
                                  pad_token_id=tok.pad_token_id)
    devices = [torch.device(device).index or 0] if device == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.device(device):  # built on the device, in its dtype
        torch.manual_seed(seed)
        network = AutoModel.from_config(config, dtype=dtype)
    model = DiffusionLM(network=network.eval(), tokenizer=tok, mask_id=tok.mask_token_id, eos_id=tok.eos_token_id,
                        eot_id=tok.convert_tokens_to_ids("<|eot_id|>"), pad_id=tok.eos_token_id, logits_slice=True,
                        suppress_mask=True,  # random weights would predict the mask token now and then
                        kv_cache=True, max_positions=config.max_sequence_length, name="llada-random")
    return model, "native LLaDA (random init)"


def architecture(network):
    """:class:`~igpo_kit.models.memory.Architecture` of a built network (LLaDA's or transformers' config names)."""
    from igpo_kit.models.memory import Architecture

    cfg = network.config
    get = lambda *names: next(getattr(cfg, n) for n in names if getattr(cfg, n, None))  # noqa: E731
    shapes: dict[str, list[tuple[int, int]]] = {}
    for name, m in network.named_modules():
        if isinstance(m, torch.nn.Linear):
            shapes.setdefault(name.rsplit(".", 1)[-1], []).append((m.in_features, m.out_features))
    return Architecture(n_params=sum(p.numel() for p in network.parameters()),
                        n_layers=get("n_layers", "num_hidden_layers"), d_model=get("d_model", "hidden_size"),
                        d_ff=get("mlp_hidden_size", "intermediate_size"), vocab=get("vocab_size"),
                        linear_shapes=shapes)


# --- measuring --------------------------------------------------------------------------------------------------


class Meter:
    """Wall time and peak device memory of one part (CUDA: synchronized, ``max_memory_allocated`` reset at the
    start; CPU: no peak)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.seconds, self.peak_gb = 0.0, None

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.peak_gb = torch.cuda.max_memory_allocated() / 1e9
        self.seconds = time.perf_counter() - self.t0


def sampler_part(model, arch, cfg: dict, seed: int = 0) -> list[dict]:
    """Tokens/s and peak memory of the exact sampler (and dual_cache when the model has a cache) per batch size."""
    from igpo_kit.errors import ConfigError
    from igpo_kit.models.memory import Workload, estimate_peak
    from igpo_kit.sampling.generate import low_confidence

    common = dict(gen_length=cfg["gen_length"], block_length=cfg["block"], steps=cfg["steps"], temperature=0.0)
    samplers = {"low_confidence": low_confidence(**common)}
    skipped = {}
    try:
        from igpo_kit.sampling.dual_cache import dual_cache

        cached = dual_cache(**common)
        cached.check_model(model)
        samplers["dual_cache"] = cached
    except (ImportError, ConfigError) as exc:
        skipped["dual_cache"] = str(exc).split(";")[0]
    dev = model.device
    g = torch.Generator().manual_seed(seed)
    high = min(model.vocab_size, 100) if model.vocab_size < 1000 else 126000
    rows = []
    for name, s in samplers.items():  # warm-up (kernels, allocator) at the smallest batch
        s(model, torch.randint(8, high, (cfg["batches"][0], cfg["prompt"]), generator=g).to(dev))
    weight_bytes = torch.finfo(next(model.network.parameters()).dtype).bits // 8
    for batch in cfg["batches"]:
        prompts = torch.randint(8, high, (batch, cfg["prompt"]), generator=g).to(dev)
        w = Workload(rows=batch, seq_len=cfg["prompt"] + cfg["gen_length"], logit_positions=cfg["gen_length"],
                     rollout_rows=batch, rollout_positions=cfg["prompt"] + cfg["gen_length"],
                     weight_bytes=weight_bytes, bf16_compute=False)
        parts = estimate_peak(arch, w)
        estimate = parts["weights_gb"] + parts["rollout_logits_gb"]
        for name, s in samplers.items():
            with Meter(dev) as m:
                out = s(model, prompts)
            rows.append(dict(sampler=name, batch=batch, seconds=m.seconds,
                             tok_s=batch * cfg["gen_length"] / m.seconds, nfe=getattr(out, "nfe", None),
                             peak_gb=m.peak_gb, estimate_gb=estimate,
                             estimate_over_measured=None if m.peak_gb is None else estimate / m.peak_gb))
    for name, why in skipped.items():
        rows.append(dict(sampler=name, skipped=why))
    return rows


def igpo_step(model, arch, cfg: dict, seed: int = 0) -> dict:
    """One IGPO rollout batch + update through :func:`~igpo_kit.rl.trainer.train_rl` (LoRA, checkpointing, ZeRO-2)."""
    from peft import LoraConfig, get_peft_model

    from igpo_kit.components import (advantage_estimator, entropy_filter, grader, hint_chunker, logprob_estimator,
                                     loss, prompt, replacement_policy)
    from igpo_kit.data.synthetic import arithmetic
    from igpo_kit.models.base import DiffusionLM
    from igpo_kit.models.memory import Workload, estimate_peak
    from igpo_kit.rl.distributed import make_accelerator
    from igpo_kit.rl.trainer import Components, RLSettings, train_rl
    from igpo_kit.runs import Run
    from igpo_kit.sampling.generate import low_confidence

    G, mb = cfg["group_size"], cfg["micro_batch_size"]
    names = {n.rsplit(".", 1)[-1] for n, m in model.network.named_modules() if isinstance(m, torch.nn.Linear)}
    targets = [t for t in LLADA_LORA_TARGETS if t in names] or sorted(names)
    devices = [torch.cuda.current_device()] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        net = get_peft_model(model.network, LoraConfig(r=cfg["lora_rank"], lora_alpha=cfg["lora_alpha"],
                                                       lora_dropout=0.0, target_modules=targets))
    policy = DiffusionLM(**{**model.__dict__, "network": net})
    p = prompt.llada_reasoning()
    examples = arithmetic(n=4, seed=seed)
    prompt_tokens = max(len(policy.chat_prompt(p.messages(ex), prefill=p.prefill)) for ex in examples)
    components = Components(
        sampler=low_confidence(gen_length=cfg["gen_length"], block_length=cfg["block"], steps=cfg["steps"]),
        grader=grader.math_verify(), prompt=p, hint_chunker=hint_chunker.paper(),
        replacement_policy=replacement_policy.igpo(), entropy_filter=entropy_filter.top_fraction(),
        advantage_estimator=advantage_estimator.mean_centered(), logprob_estimator=logprob_estimator.mean_field(),
        loss=loss.token_clip(kl_beta=0.01))
    settings = RLSettings(group_size=G, prompts_per_step=1, max_steps=1, inner_iters=1, warmup_steps=0,
                          micro_batch_size=mb, gradient_checkpointing=True, save_model=False, grade_workers=1,
                          seed=seed)
    acc = make_accelerator("recipes/deepspeed/zero2.json", mb, settings.max_grad_norm)
    trained = sum(p.numel() for p in net.parameters() if p.requires_grad)
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(Path(tmp))
        log = io.StringIO()
        with Meter(model.device) as m, contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
            train_rl(policy, examples, components, settings, run, lora=True, accelerator=acc)
        metrics = run.metrics()[0]
        ckpt = re.findall(r"checkpoint step_\S+: [^)]*\)", " ".join(log.getvalue().split()))
    w = Workload(rows=mb, seq_len=prompt_tokens + cfg["gen_length"], logit_positions=cfg["gen_length"],
                 rollout_rows=G, rollout_positions=prompt_tokens + cfg["gen_length"], trained=trained,
                 weight_bytes=torch.finfo(next(model.network.parameters()).dtype).bits // 8,
                 bf16_compute=model.device.type == "cuda", zero_stage=2, world=1, gradient_checkpointing=True)
    estimate = estimate_peak(arch, w)
    parts = {k: metrics[k] for k in ("rollout_s", "inpaint_s", "grading_s", "logprob_s", "update_s", "step_s")}
    return dict(parts=parts, total_s=m.seconds, peak_gb=m.peak_gb, estimate=estimate,
                estimate_over_measured=None if m.peak_gb is None else estimate["peak_gb"] / m.peak_gb,
                trained_params=trained, lora_rank=cfg["lora_rank"], lora_targets=targets,
                prompt_tokens=prompt_tokens, triggered_groups=metrics["triggered_groups"],
                rollouts_sampled=metrics["rollouts_sampled"], checkpoint=ckpt[-1] if ckpt else None)


# --- report -----------------------------------------------------------------------------------------------------


def _gb(x) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def table(result: dict) -> str:
    c = result["settings"]
    lines = [f"model: {result['model']}, {result['params'] / 1e6:.1f} M params, {result['device']}, {c['dtype']}",
             f"sampler: prompt {c['prompt']}, L {c['gen_length']}, block {c['block']}, steps {c['steps']} "
             f"(reduced; paper RL: L/2), greedy",
             f"{'sampler':<16}{'batch':>6}{'seconds':>10}{'tokens/s':>11}{'peak GB':>9}{'est. GB':>9}{'est/peak':>9}"]
    for r in result.get("sampler", []):
        if "skipped" in r:
            lines.append(f"{r['sampler']:<16} skipped: {r['skipped']}")
            continue
        ratio = "n/a" if r["estimate_over_measured"] is None else f"{r['estimate_over_measured']:.2f}"
        lines.append(f"{r['sampler']:<16}{r['batch']:>6}{r['seconds']:>10.2f}{r['tok_s']:>11.1f}{_gb(r['peak_gb']):>9}"
                     f"{_gb(r['estimate_gb']):>9}{ratio:>9}")
    if "igpo_step" not in result:
        return "\n".join(lines + [f"IGPO step failed: {result.get('igpo_step_error')}"])
    s = result["igpo_step"]
    lines.append(f"IGPO step: G {c['group_size']}, 1 prompt ({s['prompt_tokens']} tokens), LoRA r {s['lora_rank']} "
                 f"({s['trained_params'] / 1e6:.1f} M trained), gradient checkpointing, ZeRO-2, mu 1, "
                 f"micro-batch {c['micro_batch_size']}; triggered groups {s['triggered_groups']:.0f}, rollouts "
                 f"{s['rollouts_sampled']:.0f}")
    lines.append("  " + "  ".join(f"{k[:-2]} {v:.2f}s" for k, v in s["parts"].items()) + f"  (total {s['total_s']:.1f}s"
                 " with setup and checkpoint)")
    ratio = "n/a" if s["estimate_over_measured"] is None else f"{s['estimate_over_measured']:.2f}"
    lines.append(f"  peak memory {_gb(s['peak_gb'])} GB measured, {_gb(s['estimate']['peak_gb'])} GB estimated "
                 f"(--dry-run's estimate, no overhead; est/peak {ratio})")
    if s["checkpoint"]:
        lines.append(f"  {s['checkpoint']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny config on CPU (the CI test runs this)")
    ap.add_argument("--out", default=None, help="write the figures as JSON here (default gpu_check[_smoke].json)")
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default 64 on the GPU)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    name = "smoke" if args.smoke else "llada8b"
    cfg = dict(CONFIGS[name])
    if args.steps:
        cfg["steps"] = args.steps
    if cfg["device"] == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device (use --smoke for the CPU path)", file=sys.stderr)
        return 2
    if cfg["device"] == "cpu":
        torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.perf_counter()
    model, what = build_model(cfg["model"], cfg["device"], cfg["dtype"], args.seed)
    arch = architecture(model.network)
    result = dict(config=name, model=what, params=arch.n_params, device=str(model.device),
                  gpu=torch.cuda.get_device_name() if model.device.type == "cuda" else None,
                  settings={**{k: v for k, v in cfg.items() if k not in ("model", "dtype")},
                            "dtype": str(cfg["dtype"]).replace("torch.", ""), "sizes": cfg["model"]},
                  build_s=time.perf_counter() - t0)
    out = Path(args.out or f"gpu_check{'_smoke' if args.smoke else ''}.json")
    failed = None
    for part, fn in (("sampler", sampler_part), ("igpo_step", igpo_step)):  # a failing part keeps the others' figures
        try:
            result[part] = fn(model, arch, cfg, args.seed)
        except Exception as exc:  # noqa: BLE001  (reported, written, exit 1)
            failed = result[part + "_error"] = f"{type(exc).__name__}: {exc}"
            print(f"gpu_check: {part} failed: {failed}", file=sys.stderr)
            traceback.print_exc()
        out.write_text(json.dumps(result, indent=1, default=str))
    result["wall_s"] = time.perf_counter() - t0
    print(table(result))
    print(f"wall time {result['wall_s']:.1f}s")
    out.write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
