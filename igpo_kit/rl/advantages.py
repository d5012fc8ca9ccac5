"""Group-relative advantages (paper Eq. 2; spec sec. 5.6, invariant 14).

Registered (kind ``advantage_estimator``):

* :func:`mean_centered` (default; paper Eq. 2 and the released code): ``A_i = r_i - mean_group(r)``.
* :func:`std_normalized`: ``A_i = (r_i - mean_group(r)) / (std_group(r) + eps)`` (DeepSeek GRPO / TRL; the std
  is Bessel-corrected like TRL's ``std(dim=1)``; a group of one rollout gets 0).

Each is called as ``estimator(rewards [N, G]) -> advantages [N, G]``; a sequence's advantage is shared by all its
tokens. Replacement (Alg. 1 line 10) happens before, so advantages see the final group.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["MeanCentered", "StdNormalized", "mean_centered", "std_normalized"]


def _check(rewards: torch.Tensor) -> torch.Tensor:
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [N, G], got shape {tuple(rewards.shape)}")
    return rewards.float()


@dataclass(frozen=True)
class MeanCentered:
    """``A_i = r_i - (1/G) sum_j r_j`` (Eq. 2)."""

    def __call__(self, rewards: torch.Tensor) -> torch.Tensor:
        """Args: rewards ``FloatTensor[N, G]``. Returns: advantages ``FloatTensor[N, G]`` (float32), zero-sum per row."""
        r = _check(rewards)
        return r - r.mean(dim=1, keepdim=True)


@dataclass(frozen=True)
class StdNormalized:
    """``A_i = (r_i - mean(r)) / (std(r) + eps)`` per group."""

    eps: float = 1e-6

    def __call__(self, rewards: torch.Tensor) -> torch.Tensor:
        """Args: rewards ``FloatTensor[N, G]``. Returns: advantages ``FloatTensor[N, G]`` (float32)."""
        r = _check(rewards)
        centered = r - r.mean(dim=1, keepdim=True)
        if r.shape[1] < 2:
            return torch.zeros_like(r)
        return centered / (r.std(dim=1, keepdim=True) + self.eps)


def mean_centered() -> MeanCentered:
    """Paper Eq. 2 (default): ``A_i = r_i - mean_group(r)``, no std division."""
    return MeanCentered()


def std_normalized(eps: float = 1e-6) -> StdNormalized:
    """``A_i = (r_i - mean_group(r)) / (std_group(r) + eps)`` (DeepSeek-style GRPO).

    Args:
        eps: added to the (Bessel-corrected) group std.
    """
    return StdNormalized(eps)
