"""Clipped policy-gradient losses with a k3 KL penalty (paper Eq. 3 and Eq. 5; spec sec. 5.5, invariants 16, 18).

Registered (kind ``loss``):

* :func:`token_clip` (default; the paper's description): token-level ratio ``rho_{i,t} = exp(l_{i,t} - l^old_{i,t})``.
  A token outside the mask (e.g. a hint token removed by the entropy filter) gets exactly zero gradient.
* :func:`gspo`: sequence-level ratio ``s_i = exp(mean_t (l_{i,t} - l^old_{i,t}))`` over row i's **kept** tokens
  (the mask), broadcast to every token of the row (GSPO, Zheng et al. 2025; the paper's "sequence-level importance
  ratio through mean-field approximation"). Filtered tokens get no gradient either.
* :func:`gspo_official`: the released code (spec sec. 5.5): ``s_i`` averages over **all L positions** (mask
  ignored, EOS padding included) and the loss is normalised per token over the batch. Filtered hint tokens still
  receive gradient through ``s_i`` (spec sec. 6, sec. 12 item 9).

Per token (A_i the sequence advantage, eps_low/eps_high the clip range, beta the KL weight):

    surrogate = -min(r * A_i, clip(r, 1 - eps_low, 1 + eps_high) * A_i)          (Eq. 3 / Eq. 5, negated)
    k3        = exp(l^ref - l) - (l^ref - l) - 1  >= 0                           (reverse KL estimate)
    term      = surrogate + beta * k3

and with ``m`` the kept-token mask:

* ``normalization="sequence"`` (Eq. 5): ``(1/B) sum_i (1/|m_i|) sum_t m_{i,t} term_{i,t}``; a row without kept
  tokens contributes 0 (``1/L_i`` uses the row's kept tokens, e.g. tokens up to the first EOS after filtering);
* ``normalization="token"`` (the released code, DAPO-style): ``sum m*term / sum m`` over the whole batch
  (0 when nothing is kept).

The KL term sits inside the same per-token average as the surrogate (as in the released code; Eq. 5 writes it
outside the sum as an expectation). The loss object is called as
``loss(logps, old_logps, ref_logps, advantages, mask, hint_mask) -> (scalar loss, stats)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["ClippedLoss", "token_clip", "gspo", "gspo_official"]

_NORMALIZATIONS = ("sequence", "token")
_LEVELS = ("token", "sequence")
_AVERAGES = ("kept", "all")


def _masked_mean(x: torch.Tensor, m: torch.Tensor) -> float:
    n = int(m.sum())
    return float((x * m).sum() / n) if n else 0.0


@dataclass(frozen=True)
class ClippedLoss:
    """Clipped surrogate + beta * k3 KL. Build with :func:`token_clip`, :func:`gspo` or :func:`gspo_official`.

    Attributes:
        ratio_level: ``"token"`` (rho_{i,t}) or ``"sequence"`` (s_i).
        clip_low: eps_low.
        clip_high: eps_high.
        kl_beta: beta (0 disables the KL term).
        normalization: ``"sequence"`` (Eq. 5) or ``"token"`` (released code).
        ratio_average: for ``ratio_level="sequence"``: ``"kept"`` (mean over the row's kept tokens) or ``"all"``
            (mean over all L positions, the released code).
    """

    ratio_level: str = "token"
    clip_low: float = 0.2
    clip_high: float = 0.2
    kl_beta: float = 0.01
    normalization: str = "sequence"
    ratio_average: str = "kept"

    def __post_init__(self):
        if self.ratio_level not in _LEVELS:
            raise ValueError(f"ratio_level must be one of {_LEVELS}, got {self.ratio_level!r}")
        if self.normalization not in _NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {_NORMALIZATIONS}, got {self.normalization!r}")
        if self.ratio_average not in _AVERAGES:
            raise ValueError(f"ratio_average must be one of {_AVERAGES}, got {self.ratio_average!r}")
        if self.clip_low < 0 or self.clip_high < 0 or self.kl_beta < 0:
            raise ValueError("clip_low, clip_high and kl_beta must be >= 0")

    def ratios(self, logps: torch.Tensor, old_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Importance ratios broadcast per token, ``FloatTensor[B, L]`` (1 at tokens outside the mask in token mode).

        Masked-out positions are zeroed *before* the exponential, so their gradient is exactly 0 (no ``0 * inf``).
        """
        mask = mask.bool()
        delta = torch.where(mask, logps - old_logps, torch.zeros_like(logps))
        if self.ratio_level == "token":
            return torch.exp(delta)
        if self.ratio_average == "all":
            seq = (logps - old_logps).mean(dim=1)
        else:
            seq = delta.sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        return torch.exp(seq).unsqueeze(1).expand_as(logps)

    def __call__(
        self,
        logps: torch.Tensor,
        old_logps: torch.Tensor,
        ref_logps: torch.Tensor | None,
        advantages: torch.Tensor,
        mask: torch.Tensor,
        hint_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of a batch of B completions.

        Args:
            logps: ``FloatTensor[B, L]`` log pi_theta (with grad).
            old_logps: ``FloatTensor[B, L]`` log pi_old (no grad; equal to ``logps`` at the first inner step).
            ref_logps: ``FloatTensor[B, L]`` log pi_ref, or None (no KL term).
            advantages: ``FloatTensor[B]`` sequence advantages A_i (Eq. 2).
            mask: ``BoolTensor[B, L]`` kept tokens (completion mask after the entropy filter).
            hint_mask: ``BoolTensor[B, L]`` hint positions (for the statistics only).
        Returns:
            ``(loss, stats)``: scalar loss to minimise, and floats ``kl``, ``policy_ratio``,
            ``clip_fraction``, ``hint_tokens_clip_ratio``, ``generated_tokens_clip_ratio``,
            ``hint_tokens_policy_ratio``, ``generated_tokens_policy_ratio`` (means over kept tokens of that kind,
            0.0 when there are none), ``n_hint_tokens``, ``n_generated_tokens`` (kept tokens of each kind).
        """
        if not (logps.shape == old_logps.shape == mask.shape == hint_mask.shape) or logps.dim() != 2:
            raise ValueError("logps, old_logps, mask and hint_mask must all be [B, L]")
        if advantages.shape != logps.shape[:1]:
            raise ValueError(f"advantages must be [B]={tuple(logps.shape[:1])}, got {tuple(advantages.shape)}")
        m = mask.bool()
        mf = m.to(logps.dtype)
        old_logps = old_logps.detach().to(logps.dtype)
        ratio = self.ratios(logps, old_logps, m)
        adv = advantages.detach().to(logps.dtype).unsqueeze(1)
        clipped = ratio.clamp(1 - self.clip_low, 1 + self.clip_high)
        term = -torch.minimum(ratio * adv, clipped * adv)
        use_kl = ref_logps is not None and self.kl_beta != 0
        if use_kl:
            d = torch.where(m, ref_logps.detach().to(logps.dtype) - logps, torch.zeros_like(logps))
            k3 = torch.exp(d) - d - 1
            term = term + self.kl_beta * k3
        weighted = term * mf
        if self.normalization == "sequence":
            loss = (weighted.sum(dim=1) / mf.sum(dim=1).clamp(min=1)).mean()
        else:
            loss = weighted.sum() / mf.sum().clamp(min=1)
        with torch.no_grad():
            r = ratio.detach()
            is_clipped = ((r < 1 - self.clip_low) & (adv < 0)) | ((r > 1 + self.clip_high) & (adv > 0))
            is_clipped = is_clipped.to(r.dtype)
            hint = m & hint_mask.bool()
            gen = m & ~hint_mask.bool()
            stats = {
                "kl": _masked_mean(k3.detach(), mf) if use_kl else 0.0,
                "policy_ratio": _masked_mean(r, mf),
                "clip_fraction": _masked_mean(is_clipped, mf),
                "hint_tokens_clip_ratio": _masked_mean(is_clipped, hint.to(r.dtype)),
                "generated_tokens_clip_ratio": _masked_mean(is_clipped, gen.to(r.dtype)),
                "hint_tokens_policy_ratio": _masked_mean(r, hint.to(r.dtype)),
                "generated_tokens_policy_ratio": _masked_mean(r, gen.to(r.dtype)),
                "n_hint_tokens": float(hint.sum()),
                "n_generated_tokens": float(gen.sum()),
            }
        return loss, stats


def token_clip(
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    kl_beta: float = 0.01,
    normalization: Literal["sequence", "token"] = "sequence",
) -> ClippedLoss:
    """Token-level clipped ratio + beta * k3 KL, Eq. 5 normalisation by default (paper).

    Args:
        clip_low: eps_low.
        clip_high: eps_high.
        kl_beta: beta.
        normalization: ``"sequence"`` (Eq. 5: per-row mean over kept tokens, then mean over rows) or ``"token"``
            (sum over kept tokens / their number in the batch, the released code).
    """
    return ClippedLoss("token", clip_low, clip_high, kl_beta, normalization, "kept")


def gspo(
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    kl_beta: float = 0.01,
    normalization: Literal["sequence", "token"] = "sequence",
    ratio_average: Literal["kept", "all"] = "kept",
) -> ClippedLoss:
    """Sequence-level (GSPO) ratio ``s_i = exp(mean_t (l - l^old))`` + beta * k3 KL.

    Args:
        clip_low: eps_low.
        clip_high: eps_high.
        kl_beta: beta.
        normalization: ``"sequence"`` or ``"token"`` (see the module docstring).
        ratio_average: ``"kept"`` (mean over the row's kept tokens: filtered tokens get no gradient) or ``"all"``
            (over all L positions, as the released code).
    """
    return ClippedLoss("sequence", clip_low, clip_high, kl_beta, normalization, ratio_average)


def gspo_official(clip_low: float = 0.2, clip_high: float = 0.2, kl_beta: float = 0.01) -> ClippedLoss:
    """The released loss (spec sec. 5.5): ``s_i`` over all L positions, ``sum m*term / sum m`` over the batch.

    To reproduce the released runs the trainer's mask should be all L positions (no completion mask; the code
    scores EOS padding too) minus the entropy-filtered hint tokens.

    Args:
        clip_low: eps_low.
        clip_high: eps_high.
        kl_beta: beta.
    """
    return ClippedLoss("sequence", clip_low, clip_high, kl_beta, "token", "all")
