"""An SFT-trained start for RL: the quickstart's SFT model, trained once (content-keyed cache) and then loaded.

:func:`pretrain` is the one call that trains (or loads) an SFT start through :func:`igpo_kit.sft.cache.cached_sft`:
``entry.quickstart`` and the ``model.cached_sft`` component (:func:`cached_sft_model`) both make it, so the same
model, examples, prompt and settings give the same cache key, and whichever runs second only loads the weights.
The recipes bind those values once, in ``recipes/tiny/_quickstart_sft.gin``, which the quickstart and the tiny RL
recipes that start from its SFT model (``recipes/tiny/igpo_sft.gin``) include.

The cache root defaults to the quickstart's, ``<runs root>/quickstart/_cache`` (runs root: ``$IGPO_KIT_RUNS`` or
``./runs``), so a user who ran the quickstart does not train the SFT again. Sweep cells that start together wait for
the first one's SFT (a lock on the cache directory) and then load it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from igpo_kit.data.examples import Example
    from igpo_kit.models.base import DiffusionLM
    from igpo_kit.sft.cache import CachedSFT

__all__ = ["cached_sft_model", "default_cache_dir", "pretrain"]

QUICKSTART_NAME = "quickstart"  # the quickstart's run name (recipes/quickstart.gin)
CACHE_DIR = "_cache"  # beside its run directories


def default_cache_dir() -> Path:
    """``<runs root>/quickstart/_cache``: where ``igpo-kit run recipes/quickstart.gin`` caches its SFT."""
    from igpo_kit.runs import default_runs_dir

    return default_runs_dir() / QUICKSTART_NAME / CACHE_DIR


def pretrain(model: "DiffusionLM", examples: Sequence["Example"], prompt: Any, root: str | Path, *,
             max_length: int, batch_size: int, steps: int, lr: float, min_lr: float, warmup_steps: int,
             weight_decay: float, seed: int, checkpoint_every: int = 200,
             log: Callable[[dict], None] | None = None, notify: Callable[[str], None] | None = None) -> "CachedSFT":
    """SFT ``model`` in place on ``examples`` (WSD schedule, NELBO), or load the same SFT trained earlier.

    Args:
        model: the fresh model (its network is trained or overwritten in place).
        examples, prompt: the SFT set (traces as targets) and the prompt template (its prefill starts each target).
        root: the cache root; the run is ``root/sft-<key>``.
        max_length: sequence budget T (prompt + answer + EOS padding). batch_size: rows per step.
        steps: optimizer steps. lr, min_lr: peak and final learning rate. warmup_steps, weight_decay, seed: as
            :class:`~igpo_kit.sft.settings.SFTSettings`.
        checkpoint_every: resumable checkpoint period (not part of the key).
        log: called with each SFT step record; notify: called with one-line messages (waiting, training).
    Returns:
        :class:`~igpo_kit.sft.cache.CachedSFT` (``reused`` when loaded).
    """
    from igpo_kit.sft.cache import cached_sft

    return cached_sft(model, list(examples), prompt, root, log=log, notify=notify, max_length=max_length,
                      batch_size=batch_size, max_steps=steps, lr=lr, min_lr=min_lr, warmup_steps=warmup_steps,
                      weight_decay=weight_decay, checkpoint_every=checkpoint_every, seed=seed)


def cached_sft_model(model: "DiffusionLM", examples: Sequence["Example"], prompt: Any, *, max_length: int,
                     batch_size: int, steps: int, lr: float, min_lr: float, warmup_steps: int, weight_decay: float,
                     seed: int, checkpoint_every: int = 200, cache_dir: str | None = None,
                     num_threads: int | None = 1) -> "DiffusionLM":
    """``model`` after :func:`pretrain` (the ``model.cached_sft`` component: an SFT-trained start for RL).

    Args:
        model, examples, prompt, max_length ... checkpoint_every: as :func:`pretrain`.
        cache_dir: the cache root (None: :func:`default_cache_dir`, the quickstart's).
        num_threads: torch intra-op threads while training (restored afterwards; None leaves them).
    Returns:
        the SFT-trained model, in eval mode.
    """
    import time

    import torch
    from rich.console import Console

    console = Console(stderr=True)
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    threads = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    t0 = time.perf_counter()

    def say(message: str) -> None:
        console.print(message, highlight=False, soft_wrap=True)

    try:
        sft = pretrain(model, examples, prompt, root, max_length=max_length, batch_size=batch_size, steps=steps,
                       lr=lr, min_lr=min_lr, warmup_steps=warmup_steps, weight_decay=weight_decay, seed=seed,
                       checkpoint_every=checkpoint_every, notify=say)
    finally:
        torch.set_num_threads(threads)
    model.network.eval()
    say(f"SFT start {sft.key}: {'reused' if sft.reused else f'trained ({sft.steps_run} steps)'} in "
        f"{time.perf_counter() - t0:.0f}s: {sft.model_dir}")
    return model
