"""The RL job's root: IGPO (default components) or GRPO / GRPO+resample (other replacement policies)."""

from __future__ import annotations

from typing import Any


def rl(
    model: Any = None,
    dataset: Any = None,
    prompt: Any = None,
    sampler: Any = None,
    grader: Any = None,
    format_grader: Any = None,
    hint_chunker: Any = None,
    replacement_policy: Any = None,
    entropy_filter: Any = None,
    advantage_estimator: Any = None,
    logprob_estimator: Any = None,
    loss: Any = None,
    trace_corruption: Any = None,
    group_size: int = 8,
    prompts_per_step: int = 1,
    max_steps: int = 1440,
    inner_iters: int = 4,
    learning_rate: float = 5e-7,
    warmup_steps: int = 50,
    decay_steps: int | None = None,
    weight_decay: float = 0.1,
    adam_betas: tuple[float, float] | list[float] = (0.9, 0.99),
    max_grad_norm: float = 0.2,
    hint_ratio_low: float = 0.2,
    hint_ratio_high: float = 0.6,
    format_weight: float = 0.0,
    micro_batch_size: int | None = None,
    gradient_checkpointing: bool = False,
    lora_rank: int = 0,
    lora_alpha: int = 64,
    lora_dropout: float = 0.0,
    lora_target_modules: list[str] | tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "attn_out", "ff_proj",
                                                       "up_proj", "ff_out"),
    checkpoint_every: int = 1,
    keep_checkpoints: int = 2,
    grade_timeout_s: float = 5.0,
    grade_workers: int = 2,
    seed: int = 0,
    deepspeed_config: str | None = None,
    mixed_precision: str = "auto",
    report_to: str | list[str] | tuple[str, ...] = (),
    run: Any = None,
) -> dict:
    """Train ``model`` with IGPO (paper Alg. 1) or a baseline, depending on the components.

    Args:
        model, dataset, prompt, sampler, grader: the policy, training examples (with ground-truth traces), the
            prompt template, the rollout sampler (paper: L 256, block 32, 128 steps, temperature 1.2), the
            correctness grader (binary by default).
        format_grader, format_weight: optional format reward added with this weight.
        hint_chunker, replacement_policy, entropy_filter: IGPO's components (paper, igpo (lambda), top_fraction (tau));
            ``replacement_policy.none()`` gives GRPO, ``replacement_policy.resample()`` GRPO + resample (App. L).
        advantage_estimator, logprob_estimator, loss: Eq. 2, mean-field log-probs, Eq. 3-5.
        trace_corruption: optional ``@corruption.<kind>()`` applied to ground-truth traces before they become
            hints (App. J noise robustness).
        The KL weight beta is the loss's ``kl_beta``; with beta = 0 no reference model is kept.
        group_size: G. prompts_per_step: prompts per rollout batch per process. max_steps: optimizer steps.
        inner_iters: mu, optimizer steps per rollout batch. hint_ratio_low/high: eta ~ U[low, high].
        micro_batch_size: rows per forward/backward (the update and the pi_old / pi_ref / entropy passes); None:
            all ``prompts_per_step * group_size`` rows at once. Below that, gradients accumulate (DeepSpeed too).
        gradient_checkpointing: recompute each layer's activations in the backward pass (less memory, ~1/3 more
            compute in the update; on in the paper recipes); a model that cannot is a config error.
        lora_rank: >0 trains a LoRA adapter (peft) on ``lora_target_modules`` (LLaDA's names by default; every
            name must exist in the model); the reference is then the base weights under the disabled adapter.
        seed: seeds every generator of the run (rollout noise, hint patterns, eta, replacement, data order) and
            the LoRA adapter's initialisation.
        deepspeed_config: a DeepSpeed JSON (e.g. ``'recipes/deepspeed/zero2.json'``, the paper's ZeRO-2; bf16 on GPU,
            float32 on CPU) used through accelerate's ``DeepSpeedPlugin``; its ``"auto"`` values are filled from
            these settings (:func:`igpo_kit.rl.distributed.resolve_deepspeed_config`). None: data parallel (DDP).
        mixed_precision: without DeepSpeed, ``"auto"`` (bf16 on GPU, none on CPU), ``"no"`` or ``"bf16"``: bf16
            autocast with the trainable weights and AdamW states in float32 (an update at lr 5e-7 would round away in
            bf16 weights). Under DeepSpeed its config's ``bf16`` section decides (fp32 master weights as well).
        report_to: experiment trackers that also get every metrics line: ``['tensorboard']``, ``'wandb'``,
            ``'mlflow'`` (:mod:`igpo_kit.tracking`; ``metrics.jsonl`` stays the record).
    """
    from igpo_kit.errors import ConfigError
    from igpo_kit.rl.trainer import Components, RLSettings, train_rl
    from igpo_kit.sampling.generate import check_sampler_model

    missing = [n for n, v in dict(model=model, dataset=dataset, sampler=sampler, grader=grader).items() if v is None]
    if missing:
        raise ConfigError(f"entry.rl needs {', '.join(missing)}")
    check_sampler_model(sampler, model)
    from igpo_kit.components import (advantage_estimator as adv_k, entropy_filter as ent_k, hint_chunker as hc_k,
                                     logprob_estimator as lp_k, loss as loss_k, prompt as prompt_k,
                                     replacement_policy as rp_k)

    components = Components(
        sampler=sampler, grader=grader, format_grader=format_grader,
        prompt=prompt or prompt_k.llada_reasoning(),
        hint_chunker=hint_chunker or hc_k.paper(),
        replacement_policy=replacement_policy or rp_k.igpo(),
        entropy_filter=entropy_filter or ent_k.top_fraction(),
        advantage_estimator=advantage_estimator or adv_k.mean_centered(),
        logprob_estimator=logprob_estimator or lp_k.mean_field(),
        loss=loss or loss_k.token_clip(),
        trace_corruption=trace_corruption,
    )
    if lora_rank > 0:
        model = _with_lora(model, lora_rank, lora_alpha, lora_dropout, list(lora_target_modules), seed=seed)
    settings = RLSettings(
        group_size=group_size, prompts_per_step=prompts_per_step, max_steps=max_steps, inner_iters=inner_iters,
        learning_rate=learning_rate, warmup_steps=warmup_steps, decay_steps=decay_steps, weight_decay=weight_decay,
        adam_betas=tuple(adam_betas), max_grad_norm=max_grad_norm, hint_ratio_low=hint_ratio_low,
        hint_ratio_high=hint_ratio_high, format_weight=format_weight, micro_batch_size=micro_batch_size,
        gradient_checkpointing=gradient_checkpointing,
        checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints, grade_timeout_s=grade_timeout_s,
        grade_workers=grade_workers, seed=seed,
    )
    import torch

    from igpo_kit.rl.distributed import make_accelerator

    if mixed_precision not in ("auto", "no", "bf16"):
        raise ConfigError(f"entry.rl.mixed_precision must be 'auto', 'no' or 'bf16', got {mixed_precision!r}")
    if mixed_precision == "auto":
        mixed_precision = "bf16" if torch.cuda.is_available() else "no"
    accelerator = make_accelerator(deepspeed_config or None, micro_batch_size or prompts_per_step * group_size,
                                   max_grad_norm, mixed_precision=mixed_precision)
    import dataclasses

    from igpo_kit.tracking import tracked

    # trackers on the main process only (the one that logs), as accelerate's init_trackers does
    with tracked(run if accelerator.is_main_process else None, report_to, "rl", config=dataclasses.asdict(settings)):
        return train_rl(model, list(dataset), components, settings, run, lora=lora_rank > 0, accelerator=accelerator)


def _with_lora(model, rank: int, alpha: int, dropout: float, targets: list[str], seed: int = 0):
    """Wrap the policy network in a peft LoRA adapter; every target name must match a module of the model.

    The adapter's random initialisation (peft draws ``lora_A`` from the global RNG) runs under a forked global RNG
    seeded with ``seed``: the same seed gives the same adapter and the caller's RNG state is left untouched.
    """
    from igpo_kit.errors import ConfigError

    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ConfigError("lora_rank > 0 needs peft: pip install 'igpo-kit[lora]'") from None
    names = {n.rsplit(".", 1)[-1] for n, m in model.network.named_modules()
             if isinstance(m, __import__("torch").nn.Linear)}
    unknown = [t for t in targets if t not in names]
    if unknown:
        raise ConfigError(f"lora_target_modules {unknown} match no linear module of {model.name} "
                          f"(its linear modules: {', '.join(sorted(names))})")
    import torch

    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        net = get_peft_model(model.network, LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout,
                                                      target_modules=targets))
    from igpo_kit.models.base import DiffusionLM

    return DiffusionLM(**{**model.__dict__, "network": net})
