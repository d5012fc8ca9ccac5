"""Fast-dLLM's block-wise dual key/value cache for LLaDA block decoding (Wu et al. 2025): an APPROXIMATION.

The decoding is :func:`igpo_kit.sampling.generate.generate`'s (semi-AR blocks, the same schedule of tokens
committed per step, hints fixed and visible, IGPO's EOS early exit, classifier-free guidance); only the forward
pass of each step changes:

* at the first step of a block, ONE full forward over ``[prompt; generation]`` gives that step's logits and
  refreshes the key/value cache of every position (:meth:`~igpo_kit.models.base.DiffusionLM.logits_and_cache`);
* the other steps of the block run the network over the block's positions only; their queries attend to the
  block's fresh keys/values and to the CACHED ones of every position outside the block -- the prefix (prompt and
  earlier blocks) and the suffix (later blocks: masks and IGPO's hint tokens, which stay visible to the block as
  "future conditioning", spec sec. 2).

Approximation: inside a block, the positions outside it keep the keys/values computed at the block's start,
although the committed tokens of the block changed what they would attend to. Exact for the first step of every
block; ``refresh="step"`` refreshes at every step (all steps exact, no speed-up: a test of the plumbing). With
classifier-free guidance the conditional and unconditional rows ``[2B, T]`` have their caches side by side.

Only models with the cache interface (``DiffusionLM.kv_cache``: the native LLaDA and Dream classes, see
:mod:`igpo_kit.models.kv_cache`) can run it; anything else is refused with the samplers that work.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from igpo_kit.errors import ConfigError
from igpo_kit.models.base import DiffusionLM
from igpo_kit.sampling.generate import (
    BlockForward,
    ForwardFactory,
    LLaDASampler,
    guided_input,
    guided_logits,
    guided_rows,
)

REFRESH = ("block", "step")
#: the registered samplers that need no cache (named in the error for a model without one)
UNCACHED_SAMPLERS = ("sampler.low_confidence", "sampler.random")


def check_cache_support(model: DiffusionLM, sampler: str = "sampler.dual_cache") -> None:
    """Refuse a model without the key/value-cache interface (one line naming the model and what works)."""
    if not getattr(model, "kv_cache", False):
        raise ConfigError(
            f"{sampler} needs a model with a key/value cache (the native LLaDA / Dream classes: model.llada, "
            f"model.dream); {getattr(model, 'name', type(model).__name__)!s} has none: use "
            f"{' or '.join(UNCACHED_SAMPLERS)} (exact; low_confidence also takes threshold=...)"
        )


@dataclass
class DualCacheForward:
    """The forward of each step of one generation (a :data:`~igpo_kit.sampling.generate.BlockForward`).

    Attributes:
        model, attention_mask (``[B, T]`` or None), fixed (``[B, T]``), cfg_scale: as in ``generate``.
        refresh: ``block`` (a full forward at a block's first step) or ``step`` (at every step).
        refreshes: full forwards run so far (instrumentation).
    """

    model: DiffusionLM
    attention_mask: torch.Tensor | None
    fixed: torch.Tensor
    cfg_scale: float
    refresh: str = "block"
    refreshes: int = 0
    cache: object | None = None

    def __call__(self, x: torch.Tensor, blk: slice, new_block: bool, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, block_length, V]`` of the block ``blk`` for the current sequence ``x [B, T]``, or ``[N, V]``
        of its ``rows`` only (flat indices ``[N]`` into ``[B, block_length]``: the LM head runs on those rows)."""
        inputs, mask = guided_input(self.model, x, self.attention_mask, self.fixed, self.cfg_scale)
        rows = guided_rows(rows, x[:, blk].numel(), self.cfg_scale)
        if new_block or self.refresh == "step" or self.cache is None:
            self.cache = None  # the old cache is invalid: free it before the new one is built
            logits, self.cache = self.model.logits_and_cache(inputs, mask, positions=blk, rows=rows)
            self.refreshes += 1
        else:
            logits = self.model.logits(inputs, mask, positions=blk, kv_cache=self.cache, rows=rows)
        return guided_logits(logits, self.cfg_scale)


def dual_cache_forward(refresh: str = "block") -> ForwardFactory:
    """A :data:`~igpo_kit.sampling.generate.ForwardFactory` building a :class:`DualCacheForward` per generation."""

    def factory(model: DiffusionLM, attention_mask, fixed, cfg_scale: float) -> BlockForward:
        return DualCacheForward(model, attention_mask, fixed, cfg_scale, refresh)

    return factory


@dataclass(frozen=True)
class DualCacheSampler(LLaDASampler):
    """:class:`~igpo_kit.sampling.generate.LLaDASampler` whose steps reuse a dual key/value cache (approximate).

    Attributes:
        refresh: ``block`` (Fast-dLLM: one full forward per block) or ``step`` (every step; exact, for tests).
        (the others: see :class:`~igpo_kit.sampling.generate.LLaDASampler`; ``threshold`` adds Fast-dLLM's
        parallel decoding.)
    """

    refresh: str = "block"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.refresh not in REFRESH:
            raise ConfigError(f"sampler.dual_cache: refresh={self.refresh!r} is not one of {', '.join(REFRESH)}")

    def check_model(self, model: DiffusionLM) -> None:
        check_cache_support(model)

    def _forward(self, model: DiffusionLM) -> ForwardFactory:
        check_cache_support(model)
        return dual_cache_forward(self.refresh)


def dual_cache(
    gen_length: int = 256,
    block_length: int = 32,
    steps: int = 128,
    temperature: float = 0.0,
    cfg_scale: float = 0.0,
    noise: str = "fast",
    eos_early_exit: bool = False,
    threshold: float | None = None,
    refresh: str = "block",
) -> DualCacheSampler:
    """LLaDA block decoding with Fast-dLLM's dual key/value cache, low-confidence remasking: an APPROXIMATION.

    The exact sampler's decoding (``sampler.low_confidence``: blocks, schedule, hints fixed and visible, EOS early
    exit, guidance), but only the first step of each block runs the full sequence (refreshing the cache of every
    position); the block's other steps run the block alone against the cached keys/values of the prefix and the
    suffix (hints included), which are stale until the next block. Needs a model with the cache interface
    (``model.llada`` / ``model.dream``, native).

    Args:
        gen_length: ``L``; block_length: positions per block (``L % block_length == 0``);
        steps: total denoising steps (a multiple of ``L / block_length``; RL: ``L / 2``);
        temperature: tau (0 = greedy); cfg_scale: classifier-free guidance weight (0 = off);
        noise: ``fast`` | ``exact`` (the reference's random stream);
        eos_early_exit: IGPO's early exit once every row's current block is all EOS;
        threshold: Fast-dLLM's parallel decoding (None = off): commit every masked position of the block with
            confidence >= threshold (in (0, 1]), at least one per row and step; the steps per block vary;
        refresh: ``block`` (the cache is refreshed once per block) or ``step`` (every step: exact, slow).
    """
    return DualCacheSampler(gen_length, block_length, steps, temperature, "low_confidence", cfg_scale, noise,
                            eos_early_exit, threshold, refresh)
