"""Learning-rate schedules (the only ones the jobs use) as ``torch.optim.lr_scheduler.LambdaLR`` factories.

* :func:`warmup_stable_decay` — Length-Aligned SFT (paper Table 2): linear warmup over ``warmup_steps`` (200),
  constant peak lr, then a decay over the final ``decay_fraction`` (10%) of the steps down to ``min_lr`` (1e-6).
* :func:`rl_linear` — the RL job (Table 2: warmup 50, linear decay to 0 over a decay period).
* :func:`linear_warmup_decay` — transformers' ``linear`` schedule with a floor ``min_lr``.

Conventions: the factor at scheduler step ``s`` (= number of optimizer steps already taken) multiplies each param
group's base lr. The lambdas are closures, so ``LambdaLR.state_dict()`` holds only ``last_epoch`` / base lrs and a
checkpointed scheduler restores exactly after rebuilding it with the same arguments.

How they relate to transformers' schedules (``tests/test_schedules.py`` pins each statement):

* :func:`linear_factor` equals ``get_linear_schedule_with_warmup`` (``min_ratio=0``) at every step.
* :func:`rl_linear_factor` warms up one step ahead: ``(s + 1) / warmup_steps``, so the first update already has
  ``lr / warmup_steps`` (transformers: 0) and the peak comes at step ``warmup_steps - 1``; from ``warmup_steps`` on
  it equals ``get_linear_schedule_with_warmup``. Kept as it is so existing RL runs and checkpoints resume unchanged
  (with ``warmup_steps = 1``, as in ``recipes/tiny/igpo.gin``, transformers' first update would be a no-op).
* :func:`wsd_factor` warms up like ``get_wsd_schedule(warmup_type="linear")`` with ``min_lr_ratio=0`` (``s / w``;
  it starts from 0, not from ``min_lr_ratio``), is 1 while stable, and decays one step ahead of it: its factor at
  ``s`` is transformers' at ``s + 1``, so ``min_lr`` is reached at the last step ``total_steps - 1``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["wsd_factor", "linear_factor", "rl_linear_factor", "warmup_stable_decay", "linear_warmup_decay", "rl_linear"]

DECAY_TYPES = ("linear", "cosine", "sqrt")


def wsd_factor(
    step: int,
    total_steps: int,
    warmup_steps: int,
    decay_fraction: float,
    min_ratio: float,
    decay_type: str = "linear",
) -> float:
    """Warmup-stable-decay lr multiplier at scheduler step ``step``.

    ``warmup``: ``step / warmup_steps`` for ``step < warmup_steps``. ``decay``: the last
    ``decay_steps = ceil(decay_fraction * total_steps)`` steps go from 1 to ``min_ratio`` (reached at the final
    step ``total_steps - 1``; beyond it the factor stays at ``min_ratio``). ``stable``: 1 in between. When warmup
    and decay overlap (very short runs) the smaller factor wins.

    Args:
        step: optimizer steps taken so far (0-based index of the step about to run).
        total_steps: planned number of optimizer steps.
        warmup_steps: linear warmup length.
        decay_fraction: fraction of ``total_steps`` (in [0, 1]) spent decaying.
        min_ratio: ``min_lr / lr``, the final multiplier.
        decay_type: ``linear`` (default), ``cosine`` or ``sqrt`` (1 - sqrt progress) shape of the decay.
    """
    if decay_type not in DECAY_TYPES:
        raise ValueError(f"decay_type must be one of {DECAY_TYPES}, got {decay_type!r}")
    warm = 1.0 if warmup_steps <= 0 or step >= warmup_steps else step / warmup_steps
    decay_steps = min(total_steps, math.ceil(decay_fraction * total_steps)) if total_steps > 0 else 0
    start = total_steps - decay_steps
    if decay_steps <= 0 or step < start:
        dec = 1.0
    else:
        progress = min(1.0, (step - start + 1) / decay_steps)
        if decay_type == "linear":
            shape = 1.0 - progress
        elif decay_type == "cosine":
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            shape = 1.0 - math.sqrt(progress)
        dec = min_ratio + (1.0 - min_ratio) * shape
    return min(warm, dec)


def linear_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float = 0.0) -> float:
    """transformers' ``linear`` schedule: ``step / warmup_steps`` then linear from 1 to ``min_ratio`` at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return step / warmup_steps
    span = max(1, total_steps - warmup_steps)
    frac = max(0.0, (total_steps - step) / span)
    return min_ratio + (1.0 - min_ratio) * min(1.0, frac)


def rl_linear_factor(step: int, warmup_steps: int, decay_steps: int) -> float:
    """RL lr multiplier: ``(step + 1) / warmup_steps`` during warmup, then linear to 0 at ``decay_steps``."""
    if step < warmup_steps:
        return (step + 1) / max(1, warmup_steps)
    return max(0.0, (decay_steps - step) / max(1, decay_steps - warmup_steps))


def _min_ratios(optimizer: torch.optim.Optimizer, min_lr: float) -> list[float]:
    ratios = []
    for group in optimizer.param_groups:
        base = group.get("initial_lr", group["lr"])
        if base <= 0:
            ratios.append(0.0)
            continue
        if min_lr > base:
            from igpo_kit.errors import ConfigError

            raise ConfigError(f"min_lr ({min_lr:g}) is larger than the learning rate ({base:g})")
        ratios.append(min_lr / base)
    return ratios


def warmup_stable_decay(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int = 200,
    min_lr: float = 1e-6,
    decay_fraction: float = 0.1,
    decay_type: str = "linear",
    last_epoch: int = -1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Warmup-stable-decay ``LambdaLR`` (paper Table 2 defaults: warmup 200, min lr 1e-6, decay in the final 10%).

    ``min_lr`` is absolute; each param group decays to ``min_lr`` (its multiplier is ``min_lr / group lr``).
    Call ``scheduler.step()`` once after each optimizer step.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0.0 <= decay_fraction <= 1.0:
        raise ValueError(f"decay_fraction must be in [0, 1], got {decay_fraction}")
    if decay_type not in DECAY_TYPES:
        raise ValueError(f"decay_type must be one of {DECAY_TYPES}, got {decay_type!r}")
    ratios = _min_ratios(optimizer, min_lr)

    def make(ratio: float):
        def factor(step: int) -> float:
            return wsd_factor(step, total_steps, warmup_steps, decay_fraction, ratio, decay_type)

        return factor

    return torch.optim.lr_scheduler.LambdaLR(optimizer, [make(r) for r in ratios], last_epoch=last_epoch)


def linear_warmup_decay(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int = 50,
    min_lr: float = 0.0,
    last_epoch: int = -1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup then linear decay to ``min_lr`` at ``total_steps`` (RL, paper Table 2: warmup 50, decay to 0).

    ``total_steps`` is the decay period (the paper decays over 10 epochs but stops after 1440 steps, so the run may
    end well before the lr reaches ``min_lr``); past it the lr stays at ``min_lr``.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    ratios = _min_ratios(optimizer, min_lr)

    def make(ratio: float):
        def factor(step: int) -> float:
            return linear_factor(step, total_steps, warmup_steps, ratio)

        return factor

    return torch.optim.lr_scheduler.LambdaLR(optimizer, [make(r) for r in ratios], last_epoch=last_epoch)


def rl_linear(optimizer: torch.optim.Optimizer, warmup_steps: int, decay_steps: int,
              last_epoch: int = -1) -> torch.optim.lr_scheduler.LambdaLR:
    """The RL job's ``LambdaLR`` (:func:`rl_linear_factor`): warmup ``warmup_steps``, linear to 0 at ``decay_steps``."""

    def factor(step: int) -> float:
        return rl_linear_factor(step, warmup_steps, decay_steps)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor, last_epoch=last_epoch)
