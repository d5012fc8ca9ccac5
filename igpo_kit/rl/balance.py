"""Balanced inpainting across processes (Alg. 1 lines 5-8 under data parallel).

Without it each process inpaints its own all-wrong groups: with one group per process over ``W`` processes, any
process with an all-wrong group makes every other one wait for a second full rollout. Here the inpainting rows of
the triggered groups of ALL processes are gathered, spread evenly over the processes (:func:`spread`: at most one
row more on one than on another), sampled, and each row's result is sent back to the process that owns the group,
which grades it and replaces rows exactly as before (replacement and metrics per group are unchanged).

Assignment independence: a row's outcome is a function of the row alone. Its owner draws one seed per row from
its own rollout generator (so the run stays deterministic under fixed seeds); whichever process samples the row
does so in a sampler call of its own (batch 1: the owner's left-padded prompt, the hints, a generator seeded with
the row's seed). A group therefore comes out the same whichever process inpainted it, and the same as in one
process (tests/rl/test_balance.py). The price is that rows are not batched together; at LLaDA-8B's size a
512-token row is large enough to keep a GPU busy, and the slowest process does ``ceil(rows / W)`` rows instead of
all the rows of its own groups.

Communication: two ``all_gather_object`` calls per rollout batch (the rows to sample, then the results), CPU
tensors only; every process takes part even when it has no triggered group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from igpo_kit.models.base import DiffusionLM

__all__ = ["Exchange", "InpaintRow", "InpaintResult", "spread", "inpaint_balanced", "draw_row_seeds"]


def spread(n_rows: int, world: int) -> list[list[int]]:
    """Even contiguous shares of ``n_rows`` rows over ``world`` processes: ``[[row indices of rank 0], ...]``, sizes
    ``ceil`` or ``floor`` of ``n_rows / world``."""
    base, extra = divmod(n_rows, world)
    out, start = [], 0
    for r in range(world):
        size = base + (r < extra)
        out.append(list(range(start, start + size)))
        start += size
    return out


@dataclass(frozen=True)
class Exchange:
    """This process's place in the group (``rank`` of ``world``), an all-gather of picklable objects, and ``assign``:
    ``assign(n_rows, world)`` -> the global row indices each rank samples (default :func:`spread`; any assignment gives
    the same results, which the tests check with another one)."""

    rank: int = 0
    world: int = 1
    assign: Callable[[int, int], list[list[int]]] = spread

    def all_gather(self, obj: Any) -> list[Any]:
        """``[obj of rank 0, obj of rank 1, ...]`` (``torch.distributed.all_gather_object``; one process: ``[obj]``)."""
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out


@dataclass
class InpaintRow:
    """One inpainting rollout to sample, as its owner prepared it (CPU tensors).

    Attributes:
        owner: rank of the process whose group it belongs to.
        prompt_ids, prompt_mask: ``[P]`` the owner's left-padded prompt row and its attention mask.
        hint_ids, hint_mask: ``[L]`` the hint tokens fixed in the completion (all False: a hint-free resample).
        seed: the seed of this row's sampling generator.
    """

    owner: int
    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    hint_ids: torch.Tensor
    hint_mask: torch.Tensor
    seed: int


@dataclass
class InpaintResult:
    """A sampled row: ``completion`` ``[L]`` ids and ``hint_mask`` ``[L]`` (the hints kept in it), CPU tensors."""

    completion: torch.Tensor
    hint_mask: torch.Tensor


def draw_row_seeds(n: int, generator: torch.Generator) -> list[int]:
    """``n`` row seeds from the owner's ``generator`` (on its device)."""
    if n == 0:
        return []
    return torch.randint(0, 2**62, (n,), generator=generator, device=generator.device).tolist()


def sample_row(model: DiffusionLM, sampler, row: InpaintRow) -> InpaintResult:
    """Sample ``row`` alone (batch 1) with a generator seeded by ``row.seed`` on the model's device."""
    dev = model.device
    g = torch.Generator(device=dev).manual_seed(int(row.seed))
    out = sampler(model, row.prompt_ids[None].to(dev), attention_mask=row.prompt_mask[None].to(dev),
                  hint_ids=row.hint_ids[None].to(dev), hint_mask=row.hint_mask[None].to(dev), generator=g)
    return InpaintResult(out.completions[0].cpu(), out.hint_mask[0].cpu())


def inpaint_balanced(
    model: DiffusionLM,
    sampler,
    rows: list[InpaintRow],
    exchange: Exchange,
) -> tuple[list[InpaintResult], int]:
    """Sample this process's inpainting ``rows`` with the work spread over all processes (a collective call).

    Args:
        rows: this process's rows (``owner == exchange.rank``), in the order it wants the results.
        exchange: the processes and the assignment of rows to them (:class:`Exchange`).
    Returns:
        the results of ``rows`` in their order, and the number of rows this process sampled.
    """
    everyone = [r for part in exchange.all_gather(rows) for r in part]
    mine = exchange.assign(len(everyone), exchange.world)[exchange.rank]
    done = {i: sample_row(model, sampler, everyone[i]) for i in mine}
    results: dict[int, InpaintResult] = {}
    for part in exchange.all_gather(done):
        results.update(part)
    own = [i for i, r in enumerate(everyone) if r.owner == exchange.rank]
    return [results[i] for i in own], len(mine)
