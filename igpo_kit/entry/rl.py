"""The RL job's root: IGPO (default components) or GRPO / GRPO+resample (other replacement policies)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from igpo_kit.rl.settings import RLSettings
from igpo_kit.settings import flat_settings


@dataclass
class RLSetup:
    """How the job wraps the policy and where it trains it (the loop's own settings are :class:`RLSettings`).

    Attributes:
        lora_rank: >0 trains a LoRA adapter (peft) on ``lora_target_modules``; the reference is then the base weights
            under the disabled adapter. 0: full fine-tuning.
        lora_alpha: LoRA scaling numerator (the update is scaled by ``lora_alpha / lora_rank``).
        lora_dropout: dropout on the LoRA branch.
        lora_target_modules: names of the linear modules LoRA wraps (LLaDA's by default; each must exist in the model).
        deepspeed_config: a DeepSpeed JSON (e.g. ``'recipes/deepspeed/zero2.json'``, the paper's ZeRO-2; bf16 on GPU,
            float32 on CPU) used through accelerate's ``DeepSpeedPlugin``; its ``"auto"`` values are filled from the
            settings (:func:`igpo_kit.rl.distributed.resolve_deepspeed_config`). None: data parallel (DDP).
        mixed_precision: without DeepSpeed, ``"auto"`` (bf16 on GPU, none on CPU), ``"no"`` or ``"bf16"``: bf16
            autocast with the trainable weights and AdamW states in float32 (an update at lr 5e-7 would round away in
            bf16 weights). Under DeepSpeed its config's ``bf16`` section decides (fp32 master weights as well).
    """

    lora_rank: int = 0
    lora_alpha: int = 64
    lora_dropout: float = 0.0
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out")
    deepspeed_config: str | None = None
    mixed_precision: str = "auto"


@flat_settings(settings=RLSettings, setup=RLSetup)
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
    settings: RLSettings = RLSettings(),
    setup: RLSetup = RLSetup(),
    report_to: str | list[str] | tuple[str, ...] = (),
    run: Any = None,
) -> dict:
    """Train ``model`` with IGPO (paper Alg. 1) or a baseline, depending on the components.

    Recipes bind the components and, one keyword each, the fields of ``settings`` and ``setup`` (listed below):
    ``entry.rl.group_size = 8``.

    Args:
        model, dataset, prompt, sampler, grader: the policy, training examples (with ground-truth traces), the
            prompt template, the rollout sampler (paper: L 256, block 32, 128 steps, temperature 1.2), the
            correctness grader (binary by default).
        format_grader: optional format reward, added with weight ``format_weight``.
        hint_chunker, replacement_policy, entropy_filter: IGPO's components (paper, igpo (lambda), top_fraction (tau));
            ``replacement_policy.none()`` gives GRPO, ``replacement_policy.resample()`` GRPO + resample (App. L).
        advantage_estimator, logprob_estimator, loss: Eq. 2, mean-field log-probs, Eq. 3-5.
        trace_corruption: optional ``@corruption.<kind>()`` applied to ground-truth traces before they become
            hints (App. J noise robustness).
        The KL weight beta is the loss's ``kl_beta``; with beta = 0 no reference model is kept.
        settings: the loop's settings (:class:`~igpo_kit.rl.trainer.RLSettings`).
        setup: LoRA, DeepSpeed and precision (:class:`RLSetup`).
        report_to: experiment trackers that also get every metrics line: ``['tensorboard']``, ``'wandb'``,
            ``'mlflow'`` (:mod:`igpo_kit.tracking`; ``metrics.jsonl`` stays the record).
        run: the run record (passed by the runner).
    """
    from igpo_kit.errors import ConfigError
    from igpo_kit.rl.trainer import Components, train_rl
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
    if setup.lora_rank > 0:
        model = _with_lora(model, setup.lora_rank, setup.lora_alpha, setup.lora_dropout,
                           list(setup.lora_target_modules), seed=settings.seed)
    import torch

    from igpo_kit.rl.distributed import make_accelerator

    mixed_precision = setup.mixed_precision
    if mixed_precision not in ("auto", "no", "bf16"):
        raise ConfigError(f"entry.rl.mixed_precision must be 'auto', 'no' or 'bf16', got {mixed_precision!r}")
    if mixed_precision == "auto":
        mixed_precision = "bf16" if torch.cuda.is_available() else "no"
    accelerator = make_accelerator(setup.deepspeed_config or None,
                                   settings.micro_batch_size or settings.prompts_per_step * settings.group_size,
                                   settings.max_grad_norm, mixed_precision=mixed_precision)
    import dataclasses

    from igpo_kit.tracking import tracked

    # trackers on the main process only (the one that logs), as accelerate's init_trackers does
    with tracked(run if accelerator.is_main_process else None, report_to, "rl", config=dataclasses.asdict(settings)):
        return train_rl(model, list(dataset), components, settings, run, lora=setup.lora_rank > 0,
                        accelerator=accelerator)


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
