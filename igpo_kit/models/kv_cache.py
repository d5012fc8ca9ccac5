"""Key/value cache for block decoding of a bidirectional mask predictor (the native LLaDA and Dream classes).

A masked diffusion LM attends bidirectionally, so unlike an autoregressive cache the cache holds keys and values
of **every** position ``0..T-1``, and a forward pass over a *window* of positions recomputes only that window while
reading the cached keys/values of all the others. The K/V of positions outside the window are stale (computed from
the sequence as it was at the last refresh); that approximation is what a Fast-dLLM style sampler trades for speed.

The interface (network level; the adapter :class:`~igpo_kit.models.base.DiffusionLM` wraps it as
``logits_and_cache`` / ``logits(..., kv_cache=)``):

* **refresh** -- a full forward with ``use_cache=True``::

      out = network(input_ids=x, attention_mask=m, use_cache=True)      # x [B, T], m [B, T] or None
      cache = out.kv_cache                                              # K/V of all T positions, every layer

  ``out.logits`` are the ordinary (uncached) logits, so the refresh pass also serves the first step of a block.
* **window step** -- a forward over positions ``[s, s + W)`` only::

      out = network(input_ids=x[:, s:s + W], attention_mask=m, kv_cache=cache, window_start=s)

  ``input_ids`` are the window's current tokens ``[B, W]``; ``attention_mask`` stays the full ``[B, T]`` padding
  mask (keys are all T positions); position ids are those of ``[s, s + W)`` in the full sequence. Each layer
  computes fresh K/V for the window and attends, from the window's queries, over the cache with the window's slice
  replaced by them. ``out.logits`` is ``[B, W, V]`` (or the ``logits_to_keep`` subset of the window). The cache is
  left untouched unless ``update_cache=True``, which writes the window's fresh K/V into it (a "prefix cache"
  variant commits a finished block that way instead of a full refresh).
* **exactness** -- right after a refresh from the same ``x``, a window step returns the uncached logits of the
  window (equal up to float rounding of the different matmul shapes, ~1e-6 in float32; tested).
* **shifted models** (Dream: logits at ``i`` score token ``i + 1``) -- the network stays unshifted; the adapter
  runs the window ``[s - 1, e)`` so that logits for tokens ``[s, e)`` exist.

The cache is inference-only (no autograd through it) and holds ``2 * layers * B * H_kv * T * D`` values in the
model's dtype (LLaDA-8B, T = 1024: 0.5 GiB per sequence in bf16).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class KVCache:
    """Keys and values of all positions, per layer.

    Attributes:
        keys, values: one tensor per layer, ``[B, H_kv, T, D]`` (rotary embedding already applied to the keys).
    """

    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)

    @property
    def length(self) -> int:
        """``T``, the number of cached positions."""
        return self.keys[0].shape[2] if self.keys else 0

    def window(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor, update: bool = False):
        """Keys/values of ``layer`` for attention from a window: the cache with ``[start, start + W)`` replaced.

        Args:
            layer: layer index.
            start: first position of the window.
            k, v: the window's fresh keys/values ``[B, H_kv, W, D]``.
            update: also write them into the cache (in place).
        Returns:
            keys, values ``[B, H_kv, T, D]``.
        """
        end = start + k.shape[2]
        if not 0 <= start < end <= self.length:
            raise ValueError(f"window [{start}, {end}) does not fit the cache of {self.length} positions")
        if update:
            self.keys[layer][:, :, start:end] = k
            self.values[layer][:, :, start:end] = v
            return self.keys[layer], self.values[layer]
        keys = torch.cat([self.keys[layer][:, :, :start], k, self.keys[layer][:, :, end:]], dim=2)
        values = torch.cat([self.values[layer][:, :, :start], v, self.values[layer][:, :, end:]], dim=2)
        return keys, values
