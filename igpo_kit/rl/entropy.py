"""Entropy-based filtering of hint tokens (paper Sec. 3.1 "Entropy-based Gradient Filtering"; spec sec. 6,
invariant 17).

Registered (kind ``entropy_filter``):

* :func:`top_fraction` (default): per row, of the ``n`` hint tokens inside the loss mask keep the
  ``max(1, int(tau*n))`` with the highest entropy; every non-hint token is kept; rows without hints are unchanged.
* :func:`none`: keep every token of the loss mask (ablation).

Called as ``filter(entropies [B, L], hint_mask [B, L], loss_mask [B, L]) -> keep BoolTensor[B, L]``; the result is
the 0/1 token weight of the loss (surrogate and KL) and its denominator. The entropies are those of the pi_old
forward (:mod:`igpo_kit.rl.logprobs`, whole completion masked). With a token-level ratio (the paper) a filtered
hint token gets exactly zero gradient; with the released GSPO ratio over all positions it does not (sec. 6).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["TopFraction", "NoFilter", "top_fraction", "none"]


def _check(entropies: torch.Tensor, hint_mask: torch.Tensor, loss_mask: torch.Tensor) -> None:
    if not (entropies.shape == hint_mask.shape == loss_mask.shape) or entropies.dim() != 2:
        raise ValueError(
            f"entropies, hint_mask, loss_mask must all be [B, L]; got {tuple(entropies.shape)}, "
            f"{tuple(hint_mask.shape)}, {tuple(loss_mask.shape)}"
        )


@dataclass(frozen=True)
class TopFraction:
    """Keep the top-tau highest-entropy hint tokens of each row (spec sec. 6). Build with :func:`top_fraction`.

    Attributes:
        entropy_top_fraction: tau in [0, 1].
    """

    entropy_top_fraction: float = 0.2

    def __post_init__(self):
        if not 0.0 <= self.entropy_top_fraction <= 1.0:
            raise ValueError(f"entropy_top_fraction (tau) must lie in [0, 1], got {self.entropy_top_fraction}")

    def __call__(self, entropies: torch.Tensor, hint_mask: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
        """The filtered token mask.

        Args:
            entropies: ``FloatTensor[B, L]`` (pi_old, no grad).
            hint_mask: ``BoolTensor[B, L]`` hint positions.
            loss_mask: ``BoolTensor[B, L]`` tokens in the loss before filtering.
        Returns:
            ``BoolTensor[B, L]`` = ``loss_mask & (~hint | keep)``; per row with ``n`` candidate hint tokens
            (``loss_mask & hint``), ``keep`` marks the ``max(1, int(tau*n))`` highest-entropy ones (ties: lower
            position first); ``n = 0`` rows are unchanged.
        """
        _check(entropies, hint_mask, loss_mask)
        loss_mask = loss_mask.bool()
        cand = loss_mask & hint_mask.bool()
        n = cand.sum(dim=1)
        k = torch.clamp((n.double() * self.entropy_top_fraction).floor().long(), min=1)
        k = torch.where(n > 0, k, torch.zeros_like(k))
        scores = torch.where(cand, entropies.detach().float(), torch.full_like(entropies, float("-inf"), dtype=torch.float32))
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order).contiguous())
        keep = cand & (rank < k.unsqueeze(1))
        return loss_mask & (~hint_mask.bool() | keep)


@dataclass(frozen=True)
class NoFilter:
    """Keep every token of the loss mask (no entropy filtering)."""

    def __call__(self, entropies: torch.Tensor, hint_mask: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
        """Returns ``loss_mask`` as ``BoolTensor[B, L]``."""
        _check(entropies, hint_mask, loss_mask)
        return loss_mask.bool().clone()


def top_fraction(entropy_top_fraction: float = 0.2) -> TopFraction:
    """Paper entropy filter: per row keep the ``max(1, int(tau*n))`` highest-entropy of its ``n`` hint tokens.

    Args:
        entropy_top_fraction: tau (paper and released code: 0.2).
    """
    return TopFraction(entropy_top_fraction)


def none() -> NoFilter:
    """No entropy filtering: every hint token stays in the loss."""
    return NoFilter()
