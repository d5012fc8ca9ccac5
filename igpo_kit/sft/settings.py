"""The SFT job's settings (:class:`SFTSettings`): one field and one docstring line each; imports no torch.

:func:`~igpo_kit.sft.trainer.train_sft` and the SFT job (:func:`igpo_kit.entry.sft.sft`) take an instance; recipes
bind its fields one keyword each (``entry.sft.lr = 5e-6``, see :mod:`igpo_kit.settings`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SFTSettings:
    """Length-Aligned SFT settings (paper Table 2 values in the paper recipe).

    Attributes:
        max_length: sequence budget T in tokens (prompt + answer + EOS padding); longer examples are dropped.
        batch_size: rows per micro-batch, per process.
        grad_accum: micro-batches per optimizer step on each process: a step trains on
            ``batch_size * grad_accum * world_size`` rows (Table 2: 4 x 8 per GPU on 64 GPUs = 2048).
        epochs: passes over the SFT set (fractional allowed; Table 2: 100); ignored when ``max_steps`` is set.
        max_steps: planned optimizer steps (the schedule length), overriding ``epochs``.
        lr: peak learning rate of the warmup-stable-decay schedule (Table 2: 5e-6).
        weight_decay: AdamW decoupled weight decay on weight matrices (d1: 0.1).
        warmup_steps: linear warm-up steps of the WSD schedule (Table 2: 200).
        min_lr: final learning rate of the WSD decay (Table 2: 1e-6).
        decay_fraction: the WSD decay spans this last fraction of the steps (Table 2: 0.1).
        decay_type: shape of the WSD decay: ``linear``, ``cosine`` or ``sqrt`` (see :mod:`igpo_kit.schedules`).
        max_grad_norm: gradient clipping threshold (<= 0 disables clipping; the norm is still logged).
        betas: AdamW betas.
        normalization: NELBO normalisation (``answer_tokens`` | ``batch_tokens`` | ``none``, see
            :mod:`igpo_kit.sft.nelbo`).
        eps: the masking rate is ``t' = (1 - eps) t + eps``.
        end_of_turn: append ``<|eot_id|>`` after the answer (LLaDA-Instruct's chat turn, as d1's SFT data).
        checkpoint_every: save a resumable checkpoint every this many steps (0: only at the end).
        keep_checkpoints: checkpoints kept on disk.
        time_limit_s: stop after this many seconds of training, checkpoint, and end the run as failed ("stopped at
            step k"): running the same config again resumes (for allocations shorter than the run).
        seed: seeds the data order and the masking noise.
        mixed_precision: ``"auto"`` (bf16 autocast on GPU, none on CPU), ``"no"`` or ``"bf16"`` (fp32 master
            weights); used when no accelerator is given.
        deepspeed_config: a DeepSpeed JSON or dict (``'recipes/deepspeed/zero2.json'``, ZeRO-2, the paper's setup; its
            ``"auto"`` values are filled from these settings: micro batch ``batch_size``, clipping ``max_grad_norm``,
            bf16 from ``mixed_precision``) to train under ZeRO (stage <= 2) instead of DDP / one process; ZeRO-2
            over several processes needs GPUs.
        gradient_checkpointing: recompute each layer's activations in the backward pass (less memory, ~1/3 more
            compute; on in the paper recipe; :mod:`igpo_kit.models.checkpointing`); a model that cannot is a config
            error.
    """

    max_length: int = 1024
    batch_size: int = 4
    grad_accum: int = 1
    epochs: float = 1.0
    max_steps: int | None = None
    lr: float = 5e-6
    weight_decay: float = 0.1
    warmup_steps: int = 200
    min_lr: float = 1e-6
    decay_fraction: float = 0.1
    decay_type: str = "linear"
    max_grad_norm: float = 1.0
    betas: tuple[float, float] = (0.9, 0.999)
    normalization: str = "answer_tokens"
    eps: float = 1e-3
    end_of_turn: bool = False
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    time_limit_s: float | None = None
    seed: int = 0
    mixed_precision: str = "auto"
    deepspeed_config: str | dict | None = None
    gradient_checkpointing: bool = False
