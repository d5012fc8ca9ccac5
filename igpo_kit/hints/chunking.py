"""Hint chunkers: which ground-truth tokens y* are injected, and where (paper Sec. 3.1, Alg. 1 lines 5-8, Eq. 4).

Two registered chunkers (kind ``hint_chunker``):

* :func:`paper` (default) -- the paper: chunk lengths ~ U[s_min, s_max], the final-answer tokens excluded from
  chunking, ``floor(eta*N)`` chunks revealed uniformly at random, hint token ``y*_i`` at generation position ``i``
  (Eq. 4).
* :func:`spacing_scaled` -- the released code's ``create_spacing_scaled_inpainting_sequence`` (spec sec. 3.2-3.4):
  ``ceil(eta*N)`` chunks + the last chunk always, gaps stretched by ``sf = clamp((L - free_tail)/|y*|, 1, 1.5)``
  (capped at ``max_spacing``), nothing in the last ``free_tail`` positions, the answer *not* excluded. For
  reproducing the released runs.

A chunker is called once per inpainted rollout::

    plan = chunker(trace, gen_length, hint_ratio, generator)     # HintPlan, tensors of length L = gen_length

or once per group with :meth:`plan_group` (the paper segments y* once per all-wrong group and selects per
rollout, Alg. 1 lines 5-7; the released code re-chunks per rollout). All randomness comes from the
``torch.Generator`` passed in (no Python ``random``, no global torch RNG).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from igpo_kit.hints.answer_span import TraceTokens

__all__ = [
    "HintPlan",
    "PaperChunker",
    "SpacingScaledChunker",
    "paper",
    "spacing_scaled",
    "partition",
    "sample_hint_ratios",
    "stack_plans",
]

_EPS = 1e-9  # guards floor(eta*N) / floor(lambda*G) against float error (0.29 * 100 = 28.999999999999996)


@dataclass(frozen=True, eq=False)
class HintPlan:
    """The hints of one inpainted rollout.

    Attributes:
        hint_ids: ``LongTensor[L]``, the hint token at each generation position, 0 where there is no hint.
        hint_mask: ``BoolTensor[L]``, True at hint positions (the binary mask ``m`` of Eq. 4).
        n_chunks: N, the number of chunks y* was segmented into.
        n_revealed: the number of chunks injected (at least one token placed).
        chunks: the N chunks as ``(start, end)`` token indices into y* (end exclusive), in order.
        revealed: indices into ``chunks`` of the injected chunks, ascending.
        n_selected: chunks revealed by the random selection alone (``spacing_scaled`` adds the last chunk).
    """

    hint_ids: torch.Tensor
    hint_mask: torch.Tensor
    n_chunks: int
    n_revealed: int
    chunks: tuple[tuple[int, int], ...] = ()
    revealed: tuple[int, ...] = ()
    n_selected: int = 0

    def init_completion(self, mask_id: int) -> torch.Tensor:
        """``z_hint`` of Eq. 4: ``LongTensor[L]`` with the hint tokens at hint positions and ``mask_id`` elsewhere."""
        return torch.where(self.hint_mask, self.hint_ids, torch.full_like(self.hint_ids, mask_id))


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """One integer ~ U{low, ..., high} (inclusive) from ``generator``."""
    return int(torch.randint(low, high + 1, (1,), generator=generator, device=generator.device).item())


def _randperm(n: int, generator: torch.Generator) -> list[int]:
    return torch.randperm(n, generator=generator, device=generator.device).tolist()


def partition(
    start: int, end: int, min_chunk_size: int, max_chunk_size: int, generator: torch.Generator
) -> list[tuple[int, int]]:
    """Sequential partition of ``[start, end)`` into chunks of length ~ U[s_min, s_max] (inclusive).

    Loop: ``c ~ U{s_min..s_max}``, ``c = min(c, end - i)``; stop when ``c < s_min``. The unchunked tail is therefore
    shorter than ``s_min`` and never revealed (spec sec. 3.2). One draw per chunk plus one for the stopping draw
    (none when the remaining length is 0).

    Returns:
        ``[(a_1, b_1), ..., (a_N, b_N)]`` contiguous, ``b_j - a_j`` in ``[s_min, s_max]``.
    """
    chunks: list[tuple[int, int]] = []
    i = start
    while i < end:
        c = min(_randint(min_chunk_size, max_chunk_size, generator), end - i)
        if c < min_chunk_size:
            break
        chunks.append((i, i + c))
        i += c
    return chunks


def _check_ratio(hint_ratio: float) -> float:
    eta = float(hint_ratio)
    if not 0.0 <= eta <= 1.0 or math.isnan(eta):
        raise ValueError(f"hint_ratio (eta) must lie in [0, 1], got {hint_ratio}")
    return eta


def _check_sizes(min_chunk_size: int, max_chunk_size: int) -> None:
    if not 1 <= min_chunk_size <= max_chunk_size:
        raise ValueError(f"need 1 <= min_chunk_size <= max_chunk_size, got {min_chunk_size}, {max_chunk_size}")


def _ids(trace: TraceTokens | Sequence[int]) -> list[int]:
    return list(trace.ids) if isinstance(trace, TraceTokens) else list(trace)


def _empty(gen_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(gen_length, dtype=torch.long), torch.zeros(gen_length, dtype=torch.bool)


@dataclass(frozen=True)
class PaperChunker:
    """Paper hint construction (Sec. 3.1, Alg. 1 lines 5-8, Eq. 4). Build with :func:`paper`.

    * y* is truncated to ``L`` tokens (Eq. 4 needs ``i <= L``);
    * answer exclusion (``exclude_answer``): chunking covers only ``y*[:a]`` where ``a`` is the first token of the
      final-answer span (:mod:`igpo_kit.hints.answer_span`) -- chunking *stops* at the answer, so neither the answer
      nor anything after it (which may restate it) can be revealed;
    * chunk lengths ~ U[s_min, s_max] (inclusive); the unchunked tail (< s_min tokens) is never revealed;
    * ``k = floor(eta * N)`` chunks revealed, chosen uniformly (``randperm(N)[:k]``); eta = 0 -> no hints (plain
      generation), eta = 1 -> every chunk;
    * Eq. 4 placement: hint token ``y*_i`` at generation position ``i``.
    """

    min_chunk_size: int = 5
    max_chunk_size: int = 10
    exclude_answer: bool = True

    def __post_init__(self):
        _check_sizes(self.min_chunk_size, self.max_chunk_size)

    def chunks(self, trace: TraceTokens | Sequence[int], gen_length: int, generator: torch.Generator) -> list[tuple[int, int]]:
        """Segment y* into chunks ``C = {c_1..c_N}`` (Alg. 1 line 5), as ``(start, end)`` token indices."""
        end = min(len(_ids(trace)), gen_length)
        span = trace.answer_span if isinstance(trace, TraceTokens) else None
        if self.exclude_answer and span is not None:
            end = min(end, span[0])
        return partition(0, end, self.min_chunk_size, self.max_chunk_size, generator)

    def select(
        self,
        trace: TraceTokens | Sequence[int],
        chunks: Sequence[tuple[int, int]],
        gen_length: int,
        hint_ratio: float,
        generator: torch.Generator,
    ) -> HintPlan:
        """Reveal ``floor(eta*N)`` of ``chunks`` uniformly and place them at identity positions (Eq. 4)."""
        eta = _check_ratio(hint_ratio)
        ids = _ids(trace)
        n = len(chunks)
        k = min(n, math.floor(eta * n + _EPS))
        revealed = sorted(_randperm(n, generator)[:k]) if k > 0 else []
        hint_ids, hint_mask = _empty(gen_length)
        for j in revealed:
            a, b = chunks[j]
            hint_ids[a:b] = torch.tensor(ids[a:b], dtype=torch.long)
            hint_mask[a:b] = True
        return HintPlan(hint_ids, hint_mask, n, len(revealed), tuple(chunks), tuple(revealed), len(revealed))

    def __call__(
        self, trace: TraceTokens | Sequence[int], gen_length: int, hint_ratio: float, generator: torch.Generator
    ) -> HintPlan:
        """Hints for one rollout: chunk y*, reveal ``floor(eta*N)`` chunks, Eq. 4 placement.

        Args:
            trace: y* (:class:`TraceTokens`; a plain id list has no answer span to exclude).
            gen_length: L, the generation length.
            hint_ratio: eta in [0, 1].
            generator: the only source of randomness.
        Returns:
            :class:`HintPlan` with ``hint_ids: LongTensor[L]``, ``hint_mask: BoolTensor[L]``.
        """
        _check_ratio(hint_ratio)
        return self.select(trace, self.chunks(trace, gen_length, generator), gen_length, hint_ratio, generator)

    def plan_group(
        self,
        trace: TraceTokens | Sequence[int],
        gen_length: int,
        hint_ratios: Sequence[float] | torch.Tensor,
        generator: torch.Generator,
    ) -> list[HintPlan]:
        """Alg. 1 lines 5-7: segment y* once, then select ``floor(eta_i*N)`` chunks for each rollout ``i``.

        Args:
            hint_ratios: ``FloatTensor[G]`` (or a list), one eta per inpainted rollout.
        Returns:
            G :class:`HintPlan` s sharing the same chunks.
        """
        ratios = [_check_ratio(r) for r in (hint_ratios.tolist() if torch.is_tensor(hint_ratios) else hint_ratios)]
        chunks = self.chunks(trace, gen_length, generator)
        return [self.select(trace, chunks, gen_length, eta, generator) for eta in ratios]


@dataclass(frozen=True)
class SpacingScaledChunker:
    """The released code's hint construction (spec sec. 3.2-3.4; invariants 8, 9, 10). Build with
    :func:`spacing_scaled`.

    * ``E = max(0, L - free_tail)``; y* truncated to ``A = min(|y*|, E)`` tokens; the answer is **not** excluded;
    * chunks ~ U[s_min, s_max] as in :func:`partition`;
    * selection: ``k = max(0, int(N*(1-eta)))`` chunks stay masked (uniform), the other ``N - k = ceil(eta*N)``
      (float edge cases as in the code) are revealed, **plus the last chunk always**;
    * placement (sec. 3.4): ``sf = clamp(E/|y*|, 1, 1.5)`` with the *untruncated* ``|y*|``; for revealed chunks in
      order ``a'_1 = int(a_1*sf)``, ``a'_k = b'_{k-1} + min(int((a_k - b_{k-1})*sf), max_spacing)``,
      ``b'_k = a'_k + (b_k - a_k)``; a chunk crossing ``E`` is truncated to ``E``, one starting at or after ``E`` is
      dropped with all later ones. Positions ``[E, L)`` never hold hints;
    * eta = 0 gives no hints (the released ``generate_inpainting`` skips hints when ``eta <= 0``; its chunker would
      crash); any eta > 0 reveals at least the last chunk (not plain generation, invariant 10); eta = 1 reveals
      every chunk (the released code crashes there, spec sec. 3.3).
    """

    min_chunk_size: int = 5
    max_chunk_size: int = 10
    max_spacing: int = 100
    free_tail: int = 30

    def __post_init__(self):
        _check_sizes(self.min_chunk_size, self.max_chunk_size)
        if self.max_spacing < 0 or self.free_tail < 0:
            raise ValueError("max_spacing and free_tail must be >= 0")

    def __call__(
        self, trace: TraceTokens | Sequence[int], gen_length: int, hint_ratio: float, generator: torch.Generator
    ) -> HintPlan:
        """Hints for one rollout, as the released code builds them (see the class docstring).

        Args:
            trace: y* (its ``answer_span`` is ignored).
            gen_length: L.
            hint_ratio: eta in [0, 1].
            generator: the only source of randomness.
        Returns:
            :class:`HintPlan` with ``hint_ids: LongTensor[L]``, ``hint_mask: BoolTensor[L]``.
        """
        eta = _check_ratio(hint_ratio)
        ids = _ids(trace)
        n_tokens = len(ids)
        limit = max(0, gen_length - self.free_tail)
        chunks = partition(0, min(n_tokens, limit), self.min_chunk_size, self.max_chunk_size, generator)
        hint_ids, hint_mask = _empty(gen_length)
        n = len(chunks)
        if eta <= 0.0 or n == 0:
            return HintPlan(hint_ids, hint_mask, n, 0, tuple(chunks), (), 0)
        n_masked = max(0, int(n * (1 - eta)))
        masked = set(_randperm(n, generator)[:n_masked])
        selected = [j for j in range(n) if j not in masked]
        revealed = sorted(set(selected) | {n - 1})
        sf = min(max(limit / n_tokens, 1.0), 1.5)
        placed: list[int] = []
        prev_end = prev_end_new = 0
        for idx, j in enumerate(revealed):
            a, b = chunks[j]
            if idx == 0:
                a_new = int(a * sf)
            else:
                a_new = prev_end_new + min(int((a - prev_end) * sf), self.max_spacing)
            b_new = a_new + (b - a)
            if b_new > limit:
                if a_new >= limit:
                    break
                b_new = limit
            hint_ids[a_new:b_new] = torch.tensor(ids[a : a + (b_new - a_new)], dtype=torch.long)
            hint_mask[a_new:b_new] = True
            placed.append(j)
            prev_end, prev_end_new = b, b_new
        return HintPlan(hint_ids, hint_mask, n, len(placed), tuple(chunks), tuple(placed), len(selected))

    def plan_group(
        self,
        trace: TraceTokens | Sequence[int],
        gen_length: int,
        hint_ratios: Sequence[float] | torch.Tensor,
        generator: torch.Generator,
    ) -> list[HintPlan]:
        """One plan per eta; the released code re-chunks y* for every rollout."""
        ratios = hint_ratios.tolist() if torch.is_tensor(hint_ratios) else list(hint_ratios)
        return [self(trace, gen_length, eta, generator) for eta in ratios]


def paper(min_chunk_size: int = 5, max_chunk_size: int = 10, exclude_answer: bool = True) -> PaperChunker:
    """Paper hint chunker (Sec. 3.1, Alg. 1, Eq. 4): chunk lengths ~ U[s_min, s_max], ``floor(eta*N)`` chunks
    revealed uniformly, answer excluded, identity placement.

    Args:
        min_chunk_size: s_min.
        max_chunk_size: s_max (inclusive).
        exclude_answer: exclude the final-answer span (and what follows it) from chunking (paper: True).
    """
    return PaperChunker(min_chunk_size, max_chunk_size, exclude_answer)


def spacing_scaled(
    min_chunk_size: int = 5, max_chunk_size: int = 10, max_spacing: int = 100, free_tail: int = 30
) -> SpacingScaledChunker:
    """The released code's chunker (spec sec. 3.2-3.4): ``ceil(eta*N)`` chunks + the last chunk, gaps stretched by
    ``sf = clamp((L - free_tail)/|y*|, 1, 1.5)`` capped at ``max_spacing``, no hints in the last ``free_tail``
    positions, answer not excluded.

    Args:
        min_chunk_size: s_min.
        max_chunk_size: s_max (inclusive).
        max_spacing: cap on a stretched gap between consecutive revealed chunks.
        free_tail: generation positions at the end that never hold hints (the code: 30).
    """
    return SpacingScaledChunker(min_chunk_size, max_chunk_size, max_spacing, free_tail)


def sample_hint_ratios(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    """eta_i ~ U[eta_low, eta_high] for the ``n`` inpainted rollouts of a group (Alg. 1 line 7), sorted ascending.

    Sorted like the released code (spec sec. 3.5: row j gets the j-th smallest eta); with i.i.d. draws the sort
    changes nothing in distribution, only which row gets which eta. float64, drawn from ``generator``.

    Returns:
        ``FloatTensor[n]`` (float64), ascending.
    """
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"need 0 <= eta_low <= eta_high <= 1, got {low}, {high}")
    u = torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device).cpu()
    return (low + (high - low) * u).sort().values


def stack_plans(plans: Sequence[HintPlan]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(hint_ids LongTensor[G, L], hint_mask BoolTensor[G, L])`` from G plans."""
    return torch.stack([p.hint_ids for p in plans]), torch.stack([p.hint_mask for p in plans])
