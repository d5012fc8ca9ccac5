"""Replacement of all-wrong rollouts by verified-correct extra rollouts (paper Sec. 3.1, Alg. 1 line 10, App. L;
spec sec. 4.3-4.4, invariant 13).

Registered (kind ``replacement_policy``):

* :func:`igpo` (default): an all-wrong group triggers G inpainted rollouts (with hints); ``K = min(#correct,
  floor(lambda*G))`` correct ones replace rows ``0..K-1`` of the group.
* :func:`none`: plain GRPO; never triggers extra rollouts.
* :func:`resample` (App. L, "GRPO + resample"): an all-wrong group triggers G more rollouts **without** hints
  (same budget), same replacement rule.

The trainer reads ``policy.triggers`` (run extra rollouts for all-wrong groups at all?) and ``policy.use_hints``
(with hints, or plain regeneration?), then per triggered group calls ``policy.select(correct, G, generator)``
and finally :func:`apply_replacements` once for the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

__all__ = ["ReplacementPolicy", "igpo", "none", "resample", "apply_replacements"]


@dataclass(frozen=True)
class ReplacementPolicy:
    """How an all-wrong group is rescued.

    Attributes:
        name: ``igpo``, ``none`` or ``resample``.
        triggers: extra rollouts are generated for all-wrong groups.
        use_hints: the extra rollouts are inpainted with ground-truth hints (False: plain regeneration).
        replace_fraction: lambda; at most ``floor(lambda*G)`` rows of a group are replaced.
    """

    name: str = "igpo"
    triggers: bool = True
    use_hints: bool = True
    replace_fraction: float = 0.5

    def __post_init__(self):
        if not 0.0 <= self.replace_fraction <= 1.0:
            raise ValueError(f"replace_fraction (lambda) must lie in [0, 1], got {self.replace_fraction}")

    def max_replacements(self, group_size: int) -> int:
        """``floor(lambda * G)`` (0 when the policy never triggers)."""
        if not self.triggers:
            return 0
        return min(group_size, math.floor(self.replace_fraction * group_size + 1e-9))

    def select(self, inpaint_correct: torch.Tensor, group_size: int, generator: torch.Generator) -> list[tuple[int, int]]:
        """Which extra rollouts replace which rows (spec sec. 4.4).

        ``C`` = indices of correct extra rollouts, ``K = min(|C|, floor(lambda*G))``. If ``|C| > K``, K of them are
        chosen uniformly (``randperm(|C|)[:K]``, random order); else all of them in index order. The i-th chosen
        rollout ``c_i`` overwrites row ``i`` of the group (``i = 0..K-1``; the originals are all wrong anyway).

        Args:
            inpaint_correct: ``BoolTensor[G]``, verified correctness of the G extra rollouts.
            group_size: G.
            generator: used only when ``|C| > K``.
        Returns:
            ``[(destination row, source extra row), ...]``, K pairs, destination rows ``0..K-1``.
        """
        if not self.triggers:
            return []
        correct = torch.as_tensor(inpaint_correct).reshape(-1).bool()
        if correct.numel() != group_size:
            raise ValueError(f"inpaint_correct has {correct.numel()} entries, expected G = {group_size}")
        candidates = correct.nonzero().flatten().tolist()
        k = min(len(candidates), self.max_replacements(group_size))
        if len(candidates) > k:
            order = torch.randperm(len(candidates), generator=generator, device=generator.device)[:k].tolist()
            chosen = [candidates[j] for j in order]
        else:
            chosen = candidates
        return [(i, c) for i, c in enumerate(chosen)]


def igpo(replace_fraction: float = 0.5) -> ReplacementPolicy:
    """IGPO (Alg. 1 lines 4-10): all-wrong groups get G inpainted rollouts; ``K = min(#correct, floor(lambda*G))``
    verified-correct ones replace rows ``0..K-1``.

    Args:
        replace_fraction: lambda in [0, 1] (the released code: ``max_replacements = 4`` with G = 8).
    """
    return ReplacementPolicy("igpo", triggers=True, use_hints=True, replace_fraction=replace_fraction)


def none() -> ReplacementPolicy:
    """Plain GRPO: no extra rollouts, no replacement."""
    return ReplacementPolicy("none", triggers=False, use_hints=False, replace_fraction=0.0)


def resample(replace_fraction: float = 0.5) -> ReplacementPolicy:
    """GRPO + resample (App. L): all-wrong groups get G more rollouts *without* hints (same extra budget as IGPO);
    correct ones replace rows as in :func:`igpo`.

    Args:
        replace_fraction: lambda in [0, 1].
    """
    return ReplacementPolicy("resample", triggers=True, use_hints=False, replace_fraction=replace_fraction)


def apply_replacements(
    tensors: Mapping[str, torch.Tensor],
    candidates: Mapping[str, torch.Tensor],
    pairs: Sequence[Sequence[tuple[int, int]]],
    groups: Sequence[int],
    group_size: int,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Overwrite rows of the batch with chosen extra rollouts; every other row stays bit-identical.

    Args:
        tensors: the batch, each ``Tensor[N*G, ...]`` (rows of group ``g`` at ``g*G .. g*G+G-1``), e.g.
            ``completion_ids``, ``hint_mask``, ``correctness``, ``rewards``.
        candidates: the extra rollouts of the triggered groups, each ``Tensor[M*G, ...]`` with the same keys
            (at least), trailing shape and dtype; block ``j`` (rows ``j*G .. j*G+G-1``) belongs to ``groups[j]``.
        pairs: ``pairs[j]`` = :meth:`ReplacementPolicy.select` output for block ``j``: ``(dst row, src row)``
            within the group.
        groups: ``groups[j]`` = the batch group index of candidate block ``j`` (length M).
        group_size: G.
    Returns:
        ``(new tensors, replaced)``: new tensors (clones; the inputs are not modified) and ``BoolTensor[N*G]``, True
        at replaced rows.
    """
    if len(pairs) != len(groups):
        raise ValueError(f"pairs ({len(pairs)}) and groups ({len(groups)}) must align")
    n_rows = {t.shape[0] for t in tensors.values()}
    if len(n_rows) > 1:
        raise ValueError(f"all batch tensors need the same number of rows, got {sorted(n_rows)}")
    total = n_rows.pop() if n_rows else 0
    dst, src = [], []
    for j, (group, block) in enumerate(zip(groups, pairs)):
        for d, s in block:
            if not (0 <= d < group_size and 0 <= s < group_size):
                raise ValueError(f"pair ({d}, {s}) out of range for G = {group_size}")
            dst.append(group * group_size + d)
            src.append(j * group_size + s)
    if len(set(dst)) != len(dst):
        raise ValueError("a row is replaced twice")
    if any(i >= total for i in dst):
        raise ValueError("a destination row lies outside the batch")
    replaced = torch.zeros(total, dtype=torch.bool)
    replaced[dst] = True
    out: dict[str, torch.Tensor] = {}
    for key, t in tensors.items():
        if key not in candidates:
            raise KeyError(f"candidates lack {key!r} (needed to replace rows of the batch)")
        c = candidates[key]
        if c.shape[1:] != t.shape[1:] or c.dtype != t.dtype:
            raise ValueError(
                f"{key}: candidate rows {tuple(c.shape[1:])}/{c.dtype} do not match batch rows {tuple(t.shape[1:])}/{t.dtype}"
            )
        new = t.clone()
        if dst:
            d = torch.tensor(dst, dtype=torch.long, device=t.device)
            s = torch.tensor(src, dtype=torch.long, device=c.device)
            new[d] = c[s].to(t.device)
        out[key] = new
    return out, replaced
