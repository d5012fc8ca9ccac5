"""The memory estimate of the configured RL or SFT job (``igpo-kit run RECIPE --dry-run``): reads the bound
settings, builds :class:`~igpo_kit.models.memory.Workload` and the model's architecture without loading weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gin

from igpo_kit.config.preflight import _defaults, _params
from igpo_kit.models.memory import LLADA_8B, Architecture, Workload, estimate_peak

#: prompt tokens assumed for RL rollouts when the estimate cannot know them (MetaMathQA questions under LLaDA's chat
#: template are ~100-250 tokens)
PROMPT_TOKENS = 256


def _entry_params(job: str) -> dict[str, Any]:
    from igpo_kit.config import ENTRY_PREFIX, _deref

    fn = gin.config._REGISTRY.get_match(ENTRY_PREFIX + job).wrapped
    params = dict(_defaults(fn))
    params.update({k: _deref(v) for k, v in gin.config._CONFIG.get(("", ENTRY_PREFIX + job), {}).items()})
    return params


def _ref_params(ref: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(ref, gin.config.ConfigurableReference):
        return "", {}
    return ref.configurable.selector, {**_defaults(ref.configurable.wrapped), **_params(ref)}


def architecture(model_ref: Any) -> tuple[Architecture | None, str]:
    """The architecture of the bound model and how it was found (no weights are loaded)."""
    selector, p = _ref_params(model_ref)
    if selector.endswith(".tiny"):
        from igpo_kit.models.tiny import tiny

        net = tiny(**{k: v for k, v in p.items()}).network
        return network_architecture(net), "built (tiny)"
    path = p.get("path")
    cfg_file = Path(str(path)) / "config.json" if path else None
    if cfg_file is not None and cfg_file.is_file():
        cfg = json.loads(cfg_file.read_text())
        if "d_model" in cfg:  # LLaDA's config keys
            d, ff, v, n = cfg["d_model"], cfg.get("mlp_hidden_size", 4 * cfg["d_model"]), cfg["vocab_size"], cfg["n_layers"]
            shapes = {name: [(d, d)] * n for name in ("q_proj", "k_proj", "v_proj", "attn_out")}
            shapes |= {"ff_proj": [(d, ff)] * n, "up_proj": [(d, ff)] * n, "ff_out": [(ff, d)] * n + [(d, v)]}
            return Architecture(2 * v * d + n * (4 * d * d + 3 * d * ff), n, d, ff, v, shapes), f"{cfg_file}"
        if cfg.get("model_type") == "Dream":
            return dream_architecture(cfg), f"{cfg_file}"
    if selector.endswith(".llada"):
        return LLADA_8B, "LLaDA-8B shapes (its config.json is not local)"
    if selector.endswith(".dream"):
        return dream_architecture(DREAM_7B_CONFIG), "Dream-v0-Instruct-7B shapes (its config.json is not local)"
    return None, f"no estimate for {selector or 'this model'} (unknown architecture)"


#: the size keys of Dream-v0-Instruct-7B's config.json (Qwen2.5-7B: grouped-query attention with 4 key/value heads,
#: q/k/v biases, untied 152,064-word head)
DREAM_7B_CONFIG = dict(model_type="Dream", vocab_size=152064, hidden_size=3584, intermediate_size=18944,
                       num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False)


def dream_architecture(cfg: dict) -> Architecture:
    """The architecture of a Dream config (a config.json's keys): the native class built on the meta device (no
    memory, no weights), so grouped-query k/v shapes, biases and the head are counted as the model has them."""
    import torch

    from igpo_kit.models.dream import DreamConfig, DreamModel

    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "tie_word_embeddings")
    with torch.device("meta"):
        net = DreamModel(DreamConfig(**{k: cfg[k] for k in keys if k in cfg}))
    return network_architecture(net)


def network_architecture(net) -> Architecture:
    """The architecture of a built transformers network (its config and linear layers)."""
    import torch

    cfg = net.config
    shapes: dict[str, list[tuple[int, int]]] = {}
    for name, m in net.named_modules():
        if isinstance(m, torch.nn.Linear):
            shapes.setdefault(name.rsplit(".", 1)[-1], []).append((m.in_features, m.out_features))
    return Architecture(n_params=sum(p.numel() for p in net.parameters()), n_layers=cfg.num_hidden_layers,
                        d_model=cfg.hidden_size, d_ff=cfg.intermediate_size, vocab=cfg.vocab_size,
                        linear_shapes=shapes)


def _bytes_of(dtype: Any, gpu: bool) -> int:
    return 4 if dtype == "float32" or (dtype == "auto" and not gpu) else 2


def workload(job: str, arch: Architecture, world: int, gpu: bool = True,
             prompt_tokens: int = PROMPT_TOKENS) -> Workload:
    """The :class:`Workload` of the bound ``entry.rl`` / ``entry.sft`` (one process of ``world``)."""
    from igpo_kit.rl.distributed import _load

    e = _entry_params(job)
    _, model = _ref_params(e.get("model"))
    wbytes = _bytes_of(model.get("dtype", "auto"), gpu)
    zero, bf16 = 0, False
    if e.get("deepspeed_config"):
        ds, _ = _load(e["deepspeed_config"])
        zero = int(ds.get("zero_optimization", {}).get("stage", 0))
        bf16 = ds.get("bf16", {}).get("enabled") in (True, "auto") and gpu
    else:
        bf16 = e.get("mixed_precision", "auto") in ("bf16",) or (e.get("mixed_precision", "auto") == "auto" and gpu)
    common = dict(weight_bytes=wbytes, bf16_compute=bf16, zero_stage=zero, world=world,
                  gradient_checkpointing=bool(e.get("gradient_checkpointing", False)))
    if job == "sft":
        t = int(e["max_length"])
        return Workload(rows=int(e["batch_size"]), seq_len=t, logit_positions=t, **common)
    _, smp = _ref_params(e.get("sampler"))
    gen, block = int(smp.get("gen_length", 256)), int(smp.get("block_length", 32))
    rows = int(e["prompts_per_step"]) * int(e["group_size"])
    lora = int(e.get("lora_rank", 0))
    _, loss = _ref_params(e.get("loss"))
    kl = float(loss.get("kl_beta", 0.01)) if loss else 0.01
    t = prompt_tokens + gen
    return Workload(rows=int(e.get("micro_batch_size") or rows), seq_len=t, logit_positions=gen, rollout_rows=rows,
                    rollout_positions=t, trained=arch.lora_params(lora, e["lora_target_modules"]) if lora else None,
                    reference_copy=kl > 0 and lora == 0, **common)


def estimate_job(job: str, world: int, gpu: bool = True, prompt_tokens: int = PROMPT_TOKENS,
                 overhead_gb: float = 1.0) -> dict[str, Any] | None:
    """``{"parts": ..., "source": ..., "world": ...}`` for the configured RL/SFT job, or None for other jobs."""
    if job not in ("rl", "sft"):
        return None
    arch, source = architecture(_entry_params(job).get("model"))
    if arch is None:
        return {"parts": None, "source": source}
    w = workload(job, arch, world, gpu, prompt_tokens)
    return {"parts": estimate_peak(arch, w, overhead_gb), "source": source, "workload": w, "architecture": arch}
