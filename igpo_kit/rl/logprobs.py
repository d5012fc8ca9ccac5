"""Mean-field per-token log-probabilities and entropies (paper Sec. 3.1 "DiffuGRPO's log probability estimation";
spec sec. 5.1-5.2, invariant 15).

Registered (kind ``logprob_estimator``): :func:`mean_field`. Every completion position is masked,
``x~ = [q; M^L]`` (hint tokens too: they are scored like any other completion token), and one forward gives

    logp[i, t] = log_softmax(f(x~)[i, P + t])[y_{i,t}],     H[i, t] = -sum_v p_v log p_v

for the L completion positions only (``positions=slice(P, T)``), in float32 whatever the model dtype (the released
code works in bf16, spec sec. 12 item 19). With ``prompt_mask_prob = 0`` (IGPO) the estimate is deterministic: the
same for every inner iteration, so old/ref log-probs are computed once per rollout.

Use under ``torch.no_grad()`` for pi_old / pi_ref (and the entropies of the filter, sec. 6), under grad for the
policy forward; entropies are always returned detached.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["TokenStats", "MeanField", "mean_field", "completion_mask", "masked_input", "token_entropy",
           "in_micro_batches"]


@dataclass(frozen=True, eq=False)
class TokenStats:
    """Per-token statistics of the completions.

    Attributes:
        logps: ``FloatTensor[B, L]`` float32 ``log pi(y_t | q, M^L)`` (carries grad when computed under grad).
        entropies: ``FloatTensor[B, L]`` float32 entropy of the prediction at each completion position (detached), or
            None when not computed.
    """

    logps: torch.Tensor
    entropies: torch.Tensor | None


def completion_mask(completions: torch.Tensor, eos_id: int) -> torch.Tensor:
    """True up to and including the first EOS of each row; all True for a row without EOS.

    Args:
        completions: ``LongTensor[B, L]``.
        eos_id: the EOS id.
    Returns:
        ``BoolTensor[B, L]``.
    """
    is_eos = completions == eos_id
    before = is_eos.long().cumsum(dim=1) - is_eos.long()  # number of EOS strictly before t
    return before == 0


def masked_input(
    sequences: torch.Tensor,
    prompt_length: int,
    mask_id: int,
    prompt_mask_prob: float = 0.0,
    attention_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``x~ = [q; M^L]``: every completion position set to ``mask_id``; prompt tokens optionally masked i.i.d.
    with probability ``prompt_mask_prob`` (d1's ``p_mask_prompt``; padding, ``attention_mask == 0``, never).

    Args:
        sequences: ``LongTensor[B, T]``, prompt ``[:, :P]`` then completion ``[:, P:]``.
        prompt_length: P.
        mask_id: M.
        prompt_mask_prob: p.
        attention_mask: optional ``[B, T]`` (1 = real token).
        generator: required when ``p > 0``.
    Returns:
        ``LongTensor[B, T]``.
    """
    x = sequences.clone()
    x[:, prompt_length:] = mask_id
    if prompt_mask_prob > 0:
        if generator is None:
            raise ValueError("prompt_mask_prob > 0 needs a torch.Generator")
        shape = (sequences.shape[0], prompt_length)
        u = torch.rand(shape, generator=generator, device=generator.device).to(sequences.device)
        hit = u < prompt_mask_prob
        if attention_mask is not None:
            hit &= attention_mask[:, :prompt_length].bool()
        x[:, :prompt_length][hit] = mask_id
    return x


@dataclass(frozen=True)
class MeanField:
    """Mean-field log-prob estimator (spec sec. 5.2). Build with :func:`mean_field`.

    Attributes:
        prompt_mask_prob: probability of masking each prompt token (IGPO: 0, the paper removes d1's prompt
            masking; d1: 0.15).
    """

    prompt_mask_prob: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.prompt_mask_prob < 1.0:
            raise ValueError(f"prompt_mask_prob must lie in [0, 1), got {self.prompt_mask_prob}")

    def __call__(
        self,
        model,
        sequences: torch.Tensor,
        prompt_length: int,
        attention_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        compute_entropy: bool = True,
    ) -> TokenStats:
        """Log-probs and entropies of the completions ``sequences[:, P:]``.

        Args:
            model: a :class:`~igpo_kit.models.base.DiffusionLM`.
            sequences: ``LongTensor[B, T]`` = prompt (P tokens, left-padded if needed) + completion (L tokens).
            prompt_length: P.
            attention_mask: optional ``LongTensor[B, T]`` (1 = real token, 0 = left padding).
            generator: for prompt masking (only when ``prompt_mask_prob > 0``).
            compute_entropy: False skips the entropies (``entropies`` is then None; saves a ``[B, L, V]`` float32
                buffer in the policy forward).
        Returns:
            :class:`TokenStats` with ``logps`` and ``entropies``, ``FloatTensor[B, L]`` float32.
        """
        total = sequences.shape[1]
        if not 0 <= prompt_length < total:
            raise ValueError(f"prompt_length {prompt_length} must lie in [0, T={total})")
        x = masked_input(sequences, prompt_length, model.mask_id, self.prompt_mask_prob, attention_mask, generator)
        logits = model.logits(x, attention_mask=attention_mask, positions=slice(prompt_length, total))
        targets = sequences[:, prompt_length:]
        b, length, vocab = logits.shape
        logits32 = logits.float()
        logps = -F.cross_entropy(logits32.reshape(-1, vocab), targets.reshape(-1), reduction="none").view(b, length)
        if not compute_entropy:
            return TokenStats(logps=logps, entropies=None)
        return TokenStats(logps=logps, entropies=token_entropy(logits32))


def mean_field(prompt_mask_prob: float = 0.0) -> MeanField:
    """Mean-field log-probs (spec sec. 5.2): completion fully masked, one forward, float32 log-softmax/entropy.

    Args:
        prompt_mask_prob: probability of masking each prompt token (paper/IGPO: 0.0; d1: 0.15).
    """
    return MeanField(prompt_mask_prob)


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """``H[b, t] = -sum_v p_v log p_v`` of ``softmax(logits[b, t])``, float32, detached, one row at a time.

    Args:
        logits: ``FloatTensor[B, L, V]``.
    Returns:
        ``FloatTensor[B, L]``. Besides ``logits`` it holds at most two ``[L, V]`` float32 buffers at once (never a
        ``[B, L, V]`` one): ``H = -sum_v p_v log p_v``.
    """
    out = torch.empty(logits.shape[:2], dtype=torch.float32, device=logits.device)
    with torch.no_grad():
        for b in range(logits.shape[0]):
            logp = torch.log_softmax(logits[b].detach().float(), dim=-1)  # [L, V]
            out[b] = -(logp.exp() * logp.clamp_min(torch.finfo(torch.float32).min)).sum(dim=-1)
            del logp
    return out


def in_micro_batches(
    estimator,
    model,
    sequences: torch.Tensor,
    prompt_length: int,
    attention_mask: torch.Tensor | None,
    micro_batch_size: int,
    generator: torch.Generator | None = None,
    compute_entropy: bool = True,
) -> TokenStats:
    """``estimator`` over ``micro_batch_size`` rows at a time, results concatenated (the pi_old / pi_ref passes).

    The ``[b, L, V]`` logits of one micro-batch are freed before the next is computed, so the peak memory of the
    pass does not grow with the number of rows ``B`` (tests/rl/test_logprobs.py measures it).

    Args:
        estimator: a log-prob estimator (``estimator(model, sequences, P, attention_mask, generator=...,
            compute_entropy=...)`` -> :class:`TokenStats`).
        sequences: ``LongTensor[B, T]``; attention_mask: ``[B, T]`` or None.
        micro_batch_size: rows per forward.
    Returns:
        :class:`TokenStats` with ``[B, L]`` tensors.
    """
    if micro_batch_size < 1:
        raise ValueError(f"micro_batch_size must be >= 1, got {micro_batch_size}")
    logps, ents = [], []
    for start in range(0, sequences.shape[0], micro_batch_size):
        sl = slice(start, start + micro_batch_size)
        part = estimator(model, sequences[sl], prompt_length, None if attention_mask is None else attention_mask[sl],
                         generator=generator, compute_entropy=compute_entropy)
        logps.append(part.logps)
        ents.append(part.entropies)
        del part
    return TokenStats(logps=torch.cat(logps), entropies=torch.cat(ents) if compute_entropy else None)
