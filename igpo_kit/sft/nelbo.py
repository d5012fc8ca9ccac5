"""Masked-diffusion NELBO (paper Eq. 1) for supervised fine-tuning of a masked dLLM (spec sec. 9).

Forward process (per sequence ``i``): ``t_i ~ U(0, 1)``, ``t'_i = (1 - eps) t_i + eps`` (so ``t' >= eps`` and the
``1/t'`` weight stays bounded), each **answer** token (answer text + the EOS padding after it, which are targets:
that is how the model learns to stop) is replaced by the mask token M independently with probability ``t'_i``;
prompt tokens are never masked. The model sees the noised sequence (no attention mask, as LLaDA/d1) and the loss
is the cross entropy at masked answer positions weighted by ``1/t'_i``:

    S_i = sum_k 1[x_t^k = M, k in answer_i] * CE(f_theta(x_t)^k, x_0^k) / t'_i          (Eq. 1 inner sum)

Normalisation (``normalization=``; the three in use, all unbiased up to a constant scale of the same objective):

* ``"answer_tokens"`` (default; LLaDA GUIDELINES): ``mean_i S_i / |answer_i|`` where ``|answer_i|`` counts the
  answer tokens incl. EOS padding. The per-token scale is independent of the sequence budget and of the batch
  composition, so the learning rate transfers across budgets and the loss reads as a per-token NLL bound.
* ``"batch_tokens"`` (d1 ``dLLMTrainer``): ``sum_i S_i / sum_i |answer_i|`` — long answers weigh more.
* ``"none"`` (Eq. 1 literally): ``mean_i S_i`` — the per-sequence NELBO; its scale grows with the budget.

All randomness (``t`` and the mask pattern) comes from the ``generator`` argument.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["nelbo_loss", "forward_process", "skip_forward_process", "NORMALIZATIONS"]

NORMALIZATIONS = ("answer_tokens", "batch_tokens", "none")


def forward_process(
    input_ids: torch.Tensor,
    prompt_lengths: torch.Tensor,
    answer_mask: torch.Tensor,
    mask_id: int,
    generator: torch.Generator,
    eps: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Noise ``input_ids`` ``[B, T]``: mask answer tokens i.i.d. with prob ``t' = (1 - eps) t + eps``, ``t ~ U(0, 1)``.

    Args:
        input_ids: ``[B, T]`` clean sequences (prompt, answer, EOS padding).
        prompt_lengths: ``[B]`` prompt lengths; positions ``< prompt_lengths[i]`` are never masked.
        answer_mask: ``[B, T]`` bool, the target positions (answer + EOS padding).
        mask_id: the mask token M.
        generator: source of all randomness (its device is used for the draws).
        eps: the lower bound of the masking probability.
    Returns:
        ``(noisy_ids [B, T], masked [B, T] bool, p_mask [B] = t')``.
    """
    B, T = input_ids.shape
    dev = input_ids.device
    gdev = generator.device
    t = torch.rand(B, generator=generator, device=gdev).to(dev)
    p_mask = (1.0 - eps) * t + eps
    u = torch.rand(B, T, generator=generator, device=gdev).to(dev)
    positions = torch.arange(T, device=dev)[None, :]
    target = answer_mask.to(device=dev, dtype=torch.bool) & (positions >= prompt_lengths.to(dev)[:, None])
    masked = (u < p_mask[:, None]) & target
    noisy = torch.where(masked, torch.full_like(input_ids, mask_id), input_ids)
    return noisy, masked, p_mask


def skip_forward_process(batch_size: int, seq_len: int, generator: torch.Generator) -> None:
    """Advance ``generator`` exactly as :func:`forward_process` does for a ``[batch_size, seq_len]`` batch.

    Data-parallel SFT uses it so that every rank's noise generator walks the whole global batch: a rank draws the
    noise of the other ranks' micro-batches and discards it, so each micro-batch gets the noise a single process
    would give it.
    """
    gdev = generator.device
    torch.rand(batch_size, generator=generator, device=gdev)
    torch.rand(batch_size, seq_len, generator=generator, device=gdev)


def nelbo_loss(
    model,
    input_ids: torch.Tensor,
    prompt_lengths: torch.Tensor,
    answer_mask: torch.Tensor,
    generator: torch.Generator,
    eps: float = 1e-3,
    normalization: str = "answer_tokens",
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The masked-diffusion NELBO of Eq. 1 on one batch (see the module docstring for the normalisations).

    Args:
        model: a :class:`~igpo_kit.models.base.DiffusionLM` (``model.logits`` and ``model.mask_id`` are used).
        input_ids: ``[B, T]`` clean token ids.
        prompt_lengths: ``[B]`` number of prompt tokens of each row (never masked, never targets).
        answer_mask: ``[B, T]`` bool, answer tokens incl. the EOS padding after the answer (all are targets).
        generator: the only source of randomness (``t`` per row, then the ``[B, T]`` mask draws).
        eps: ``t' = (1 - eps) t + eps``.
        normalization: ``"answer_tokens"`` (default), ``"batch_tokens"`` or ``"none"``.
    Returns:
        ``(loss, stats)``: a scalar loss with gradient; ``stats`` holds floats: ``t_mean`` (mean ``t'``),
        ``mask_rate`` (masked / answer tokens), ``masked_tokens``, ``answer_tokens``, ``nll`` (mean CE over masked
        tokens, unweighted).
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if input_ids.dim() != 2 or answer_mask.shape != input_ids.shape:
        raise ValueError(f"input_ids and answer_mask must both be [B, T]; got {tuple(input_ids.shape)} and "
                         f"{tuple(answer_mask.shape)}")
    B, T = input_ids.shape
    prompt_lengths = prompt_lengths.to(input_ids.device)
    noisy, masked, p_mask = forward_process(input_ids, prompt_lengths, answer_mask, model.mask_id, generator, eps)
    target = answer_mask.to(torch.bool) & (torch.arange(T, device=input_ids.device)[None, :] >= prompt_lengths[:, None])
    n_answer = target.sum(dim=1)  # [B]

    # the LM head is only needed from the shortest prompt on (prompt positions are never targets)
    start = int(prompt_lengths.min().item()) if B > 0 else 0
    logits = model.logits(noisy, positions=slice(start, None))  # [B, T - start, V]
    sub_masked = masked[:, start:]
    rows = torch.nonzero(sub_masked, as_tuple=True)
    picked = logits[rows].float()  # [N, V]
    targets = input_ids[:, start:][rows]
    ce = F.cross_entropy(picked, targets, reduction="none")  # [N]
    weighted = ce / p_mask[rows[0]]
    per_seq = torch.zeros(B, dtype=weighted.dtype, device=weighted.device).index_add(0, rows[0], weighted)  # S_i

    if normalization == "answer_tokens":
        loss = (per_seq / n_answer.clamp(min=1).to(per_seq.dtype)).mean()
    elif normalization == "batch_tokens":
        loss = per_seq.sum() / n_answer.sum().clamp(min=1).to(per_seq.dtype)
    else:
        loss = per_seq.mean()
    if ce.numel() == 0:
        loss = loss + logits.sum() * 0.0  # keep the graph connected when nothing was masked

    n_masked = int(masked.sum())
    n_ans = int(n_answer.sum())
    stats = {
        "t_mean": float(p_mask.mean()),
        "mask_rate": n_masked / max(1, n_ans),
        "masked_tokens": float(n_masked),
        "answer_tokens": float(n_ans),
        "nll": float(ce.detach().mean()) if ce.numel() else 0.0,
    }
    return loss, stats
