"""Token sampling and remasking confidences of LLaDA decoding (spec sec. 1.3, steps 3-4; invariants 6-7).

Gumbel-max at temperature tau: ``x0 ~ Categorical(softmax(l / tau))``.

* ``exact`` mode reproduces the reference draw bit for bit: ``u = torch.rand([B, T, V], float64, generator)``
  over the FULL logits shape (the reference draws noise for every position of every row at every step), then
  ``x0 = argmax_v exp(l_v) / (-log u_v)^tau`` in float64 -- evaluated on the active block's slice only.
* ``fast`` mode draws noise only for the positions that need it (the masked positions of the active block):
  ``x0 = argmax_v l_v / tau - log E_v`` with ``E ~ Exp(1)`` (``-log E`` is a standard Gumbel variable: the
  same distribution as the reference, not the same stream), in float32.
* ``tau = 0``: ``argmax`` of the logits as they are, and no random number is drawn.

Confidence for ``low_confidence`` remasking is the UNTEMPERED (tau = 1) softmax probability of the SAMPLED
token, in float64 (both modes; it is cheap next to a forward pass and keeps greedy decoding identical to the
reference). ``random`` remasking uses ``U(0, 1)`` float32 confidences: ``[B, T]`` in ``exact`` mode (as the
reference), one per masked block position in ``fast`` mode.

All randomness comes from the ``torch.Generator`` passed in; the global RNG is never touched. Noise is drawn
on the generator's device and moved to the logits' device if they differ.
"""

from __future__ import annotations

import torch

NOISE_MODES = ("fast", "exact")


def _draw_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    return generator.device if generator is not None else device


def greedy_tokens(logits: torch.Tensor) -> torch.Tensor:
    """``argmax`` over the vocabulary in the logits' own dtype (what the reference does at tau = 0)."""
    return logits.argmax(dim=-1)


def gumbel_max_fast(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """Sample ``x0 ~ softmax(logits / tau)`` per row of ``logits [..., V]`` (``fast`` mode).

    Uses the Gumbel form ``argmax(l / tau + g)`` with ``g = -log E``, ``E ~ Exp(1)`` drawn in float32 from
    ``generator`` with the shape of ``logits``. ``tau = 0``: plain argmax, nothing drawn.

    Returns:
        ``[...]`` int64 token ids.
    """
    if temperature == 0:
        return greedy_tokens(logits)
    if generator is None:
        raise ValueError("gumbel_max_fast: temperature > 0 needs a torch.Generator")
    draw = torch.empty(logits.shape, dtype=torch.float32, device=_draw_device(generator, logits.device))
    draw.exponential_(generator=generator)
    gumbel = draw.log_().neg_().to(logits.device)
    return (logits.float() / temperature + gumbel).argmax(dim=-1)


def exact_uniform(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """The reference's Gumbel draw ``torch.rand(shape, float64)`` (``shape`` = full ``[B, T, V]``)."""
    u = torch.rand(shape, dtype=torch.float64, generator=generator, device=_draw_device(generator, device))
    return u.to(device)


def gumbel_max_exact(
    logits: torch.Tensor,
    temperature: float,
    generator: torch.Generator | None,
    full_shape: tuple[int, int, int],
    positions: slice,
) -> torch.Tensor:
    """Sample tokens for ``logits [B, n, V]`` = the ``positions`` slice of a ``full_shape = [B, T, V]`` tensor,
    reproducing the reference's draw (``exact`` mode).

    Draws ``u = torch.rand(full_shape, float64, generator)`` (the whole shape, as the reference), keeps
    ``u[:, positions]`` and returns ``argmax_v exp(l_v) / (-log u_v)^tau`` in float64. ``tau = 0``: argmax of the
    logits as they are, nothing drawn.

    Returns:
        ``[B, n]`` int64 token ids.
    """
    if temperature == 0:
        return greedy_tokens(logits)
    if generator is None:
        raise ValueError("gumbel_max_exact: temperature > 0 needs a torch.Generator")
    u = exact_uniform(tuple(full_shape), generator, logits.device)[:, positions]
    if u.shape != logits.shape:
        raise ValueError(f"gumbel_max_exact: logits {tuple(logits.shape)} != full_shape{tuple(full_shape)}[:, {positions}]")
    logits64 = logits.to(torch.float64)
    return (logits64.exp() / (-torch.log(u)) ** temperature).argmax(dim=-1)


def token_confidence(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``softmax(float64(logits))[tokens]``: the untempered probability of the sampled token (low_confidence).

    Args:
        logits: ``[..., V]``; tokens: ``[...]`` int64.
    Returns:
        ``[...]`` float64.
    """
    p = torch.softmax(logits.to(torch.float64), dim=-1)  # per row, the same arithmetic as the reference
    return p.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def random_confidence_fast(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``U(0, 1)`` float32 ``[n]`` (random remasking, ``fast`` mode: one per masked block position)."""
    if generator is None:
        raise ValueError("random remasking needs a torch.Generator")
    return torch.rand(n, dtype=torch.float32, generator=generator, device=_draw_device(generator, device)).to(device)


def random_confidence_exact(batch: int, length: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``U(0, 1)`` float32 ``[B, T]`` (random remasking, ``exact`` mode: the reference's full-shape draw)."""
    if generator is None:
        raise ValueError("random remasking needs a torch.Generator")
    shape = (batch, length)
    return torch.rand(shape, dtype=torch.float32, generator=generator, device=_draw_device(generator, device)).to(device)
