"""The elastic trigger (paper Alg. 1 line 4, Sec. 3.1; spec sec. 4 item 2, invariant 12).

Inpainting runs for a group iff **every** correctness reward in it is 0 (the all-wrong, zero-advantage case).
Only the correctness rewards are looked at: format rewards are separate and ignored (the released code also
ignores them, so a triggered group may still have non-zero total-reward variance).
"""

from __future__ import annotations

import torch

__all__ = ["all_wrong"]


def all_wrong(correctness: torch.Tensor) -> torch.Tensor:
    """Which groups are all wrong.

    Args:
        correctness: ``FloatTensor[N, G]`` correctness rewards of N groups of G rollouts (any scale: 0/1, 0/3, or
            bool); a 1-D ``[G]`` tensor is one group.
    Returns:
        ``BoolTensor[N]``: True where every correctness reward of the group is 0.
    """
    if correctness.dim() == 1:
        correctness = correctness.unsqueeze(0)
    if correctness.dim() != 2:
        raise ValueError(f"correctness must be [N, G], got shape {tuple(correctness.shape)}")
    return (correctness == 0).all(dim=1)
