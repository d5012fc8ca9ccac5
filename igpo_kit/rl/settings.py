"""The RL loop's settings (:class:`RLSettings`): one field and one docstring line each; imports no torch.

The RL job (:func:`igpo_kit.entry.rl.rl`) takes an instance; recipes bind its fields one keyword each
(``entry.rl.group_size = 8``, see :mod:`igpo_kit.settings`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RLSettings:
    """Plain settings of the loop (paper names and symbols; Table 2 values in the paper recipe).

    Attributes:
        group_size: G, rollouts per prompt.
        prompts_per_step: prompts per rollout batch on each process.
        max_steps: optimizer steps in total.
        inner_iters: mu, optimizer steps per rollout batch.
        learning_rate: peak AdamW learning rate (after linear warm-up).
        warmup_steps: linear warm-up steps of the learning rate.
        decay_steps: the learning rate decays linearly to 0 over this many steps (None: ``max_steps``).
        weight_decay: AdamW decoupled weight decay.
        adam_betas: AdamW betas.
        max_grad_norm: gradient clipping threshold.
        hint_ratio_low: eta ~ U[hint_ratio_low, hint_ratio_high], the fraction of hint chunks revealed.
        hint_ratio_high: upper bound of eta.
        format_weight: weight of the format reward (``format_grader``) added to correctness.
        micro_batch_size: rows per forward/backward (the update and the pi_old / pi_ref / entropy passes); None: all
            ``prompts_per_step * group_size`` rows at once. Below that, gradients accumulate (DeepSpeed too).
        gradient_checkpointing: recompute each layer's activations in the backward pass (less memory, ~1/3 more
            compute in the update; on in the paper recipes; :mod:`igpo_kit.models.checkpointing`); a model that
            cannot is a config error.
        save_model: write ``<run>/model`` (LoRA merged) at the end (off: benchmarks that time one step of a large
            model).
        balance_inpainting: with several processes, spread the inpainting rows of every process's all-wrong groups
            evenly over all of them (:mod:`igpo_kit.rl.balance`); off: each process inpaints its own groups.
        checkpoint_every: save a resumable checkpoint every this many optimizer steps.
        keep_checkpoints: checkpoints kept on disk.
        grade_timeout_s: wall-clock bound per graded answer; a timed-out answer scores 0 and is counted.
        grade_workers: grading processes.
        seed: seeds every generator of the run (rollout noise, hint patterns, eta, replacement, data order) and the
            LoRA adapter's initialisation.
    """

    group_size: int = 8
    prompts_per_step: int = 1
    max_steps: int = 1440
    inner_iters: int = 4
    learning_rate: float = 5e-7
    warmup_steps: int = 50
    decay_steps: int | None = None
    weight_decay: float = 0.1
    adam_betas: tuple[float, float] = (0.9, 0.99)
    max_grad_norm: float = 0.2
    hint_ratio_low: float = 0.2
    hint_ratio_high: float = 0.6
    format_weight: float = 0.0
    micro_batch_size: int | None = None
    gradient_checkpointing: bool = False
    save_model: bool = True
    balance_inpainting: bool = True
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    grade_timeout_s: float = 5.0
    grade_workers: int = 2
    seed: int = 0
