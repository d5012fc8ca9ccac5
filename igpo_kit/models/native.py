"""What the native LLaDA and Dream classes share: RMSNorm, rotary embeddings, masked SDPA attention with the
key/value cache of :mod:`igpo_kit.models.kv_cache`, and the trunk (embedding -> blocks -> norm -> LM head on a
slice of positions) as a ``transformers.PreTrainedModel`` base class.

Conventions (both architectures):

* ``attention_mask`` is the 2-D padding mask ``[B, T]`` (1 = real token, 0 = left padding); it masks **keys**
  only (bidirectional attention: every query sees every real token). Position ids count real tokens
  (``cumsum(mask) - 1``), so a left-padded row is the same computation as the prompt alone.
* ``logits_to_keep``: None / 0 (all positions), an int ``n`` (the last ``n``), a slice or a LongTensor of positions
  (of the input window): the LM head runs on those positions only.
* ``logits_rows`` (with or without ``logits_to_keep``): entries of the ``[B, W']`` grid of kept positions, a bool
  mask ``[B, W']`` or its flat row-major indices ``[N]``; the final norm and the LM head run on those rows only and
  the logits are ``[N, V]`` (a sampler scores only the still-masked positions of its block).
* The network's logits are the checkpoint's own (Dream's stay shifted: position ``i`` scores token ``i + 1``);
  the :class:`~igpo_kit.models.base.DiffusionLM` adapter undoes the shift once.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from igpo_kit.models.kv_cache import KVCache


@dataclass
class DiffusionLMOutput(ModelOutput):
    """``logits`` ``[B, W', V]``; ``kv_cache`` (a refreshed :class:`KVCache`) when ``use_cache=True``."""

    logits: torch.Tensor | None = None
    kv_cache: KVCache | None = None


class RMSNorm(nn.Module):
    """``weight * x / sqrt(mean(x^2) + eps)``, normalised in float32 and cast back (LLaDA and Qwen2 alike)."""

    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


def padding_positions(attention_mask: torch.Tensor | None, length: int, device) -> torch.Tensor:
    """Position ids ``[B, T]`` (or ``[1, T]`` without a mask): real tokens count 0, 1, ...; padding gets 0."""
    if attention_mask is None:
        return torch.arange(length, device=device)[None]
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def rotary(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos, sin`` ``[B, 1, W, D]`` float32 for ``positions`` ``[B, W]``: ``inv_freq[i] = theta^(-2i/D)``."""
    exponent = torch.arange(0, head_dim, 2, dtype=torch.int64, device=positions.device).float() / head_dim
    inv_freq = 1.0 / (theta**exponent)  # [D/2]
    freqs = positions.float()[..., None] * inv_freq  # [B, W, D/2]
    emb = torch.cat((freqs, freqs), dim=-1)[:, None]  # [B, 1, W, D]
    return emb.cos(), emb.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, full_precision: bool) -> torch.Tensor:
    """``x * cos + rotate_half(x) * sin`` for ``x`` ``[B, H, W, D]``.

    ``full_precision`` (LLaDA's ``rope_full_precision``): rotate in float32, cast back; else (Qwen2 / Dream) cast
    ``cos, sin`` to ``x``'s dtype and rotate in it.
    """
    if full_precision:
        x32 = x.float()
        return (x32 * cos + _rotate_half(x32) * sin).to(x.dtype)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + _rotate_half(x) * sin


@dataclass
class AttentionContext:
    """Everything a block's attention needs besides its own projections.

    Attributes:
        cos, sin: rotary tables ``[B, 1, W, D]`` float32 for the window's positions.
        key_mask: ``[B, 1, 1, T]`` bool (True = attend) or None (no padding).
        kv_cache: the cache being filled (refresh) or read (window step), or None.
        window_start: first position of the window for a window step, else None.
        update_cache: write the window's K/V into the cache.
        dropout: attention dropout probability (training only).
    """

    cos: torch.Tensor
    sin: torch.Tensor
    key_mask: torch.Tensor | None = None
    kv_cache: KVCache | None = None
    window_start: int | None = None
    update_cache: bool = False
    dropout: float = 0.0


def attend(q, k, v, ctx: AttentionContext, layer: int, full_precision_rope: bool) -> torch.Tensor:
    """Bidirectional SDPA attention of one layer with rotary embeddings, padding mask and cache.

    Args:
        q: ``[B, H, W, D]``; k, v: ``[B, H_kv, W, D]`` (before rotary).
    Returns:
        ``[B, W, H * D]``.
    """
    q = apply_rotary(q, ctx.cos, ctx.sin, full_precision_rope)
    k = apply_rotary(k, ctx.cos, ctx.sin, full_precision_rope)
    if ctx.kv_cache is not None and ctx.window_start is not None:
        k, v = ctx.kv_cache.window(layer, ctx.window_start, k, v, update=ctx.update_cache)
    elif ctx.kv_cache is not None:
        ctx.kv_cache.keys.append(k.detach())
        ctx.kv_cache.values.append(v.detach())
    if k.shape[1] != q.shape[1]:
        reps = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(reps, dim=1), v.repeat_interleave(reps, dim=1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=ctx.key_mask, dropout_p=ctx.dropout, is_causal=False)
    b, h, w, d = out.shape
    return out.transpose(1, 2).reshape(b, w, h * d)


def select_positions(hidden: torch.Tensor, logits_to_keep, rows: torch.Tensor | None = None) -> torch.Tensor:
    """``hidden`` ``[B, W, C]`` at ``logits_to_keep`` (None/0: all; int n: last n; slice; LongTensor ``[W']``):
    ``[B, W', C]``, or ``[N, C]``: the ``rows`` of that grid (see :func:`select_rows`)."""
    if logits_to_keep is None or (isinstance(logits_to_keep, int) and logits_to_keep == 0):
        kept = hidden
    elif isinstance(logits_to_keep, int):
        kept = hidden[:, -logits_to_keep:]
    elif isinstance(logits_to_keep, slice):
        kept = hidden[:, logits_to_keep]
    else:
        kept = hidden.index_select(1, logits_to_keep.to(hidden.device))
    return kept if rows is None else select_rows(kept, rows)


def select_rows(grid: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The entries ``rows`` of ``grid`` ``[B, W, ...]``: a bool mask ``[B, W]`` or its flat row-major indices ``[N]``
    (``mask.reshape(-1).nonzero()``; indices need no host-device sync) -> ``[N, ...]`` in row-major order."""
    flat = rows.reshape(-1).nonzero().squeeze(-1) if rows.dtype == torch.bool else rows
    return grid.flatten(0, 1).index_select(0, flat.to(grid.device))


class NativeDiffusionModel(PreTrainedModel):
    """Trunk shared by the native classes. Subclasses define ``embed_tokens()``, ``blocks()``, ``final_norm()``,
    ``lm_head()``, and the rope settings ``rope_theta``, ``head_dim``, ``rope_full_precision``, ``max_positions``.

    ``forward(input_ids [B, W], attention_mask [B, T] | None, logits_to_keep, logits_rows, use_cache, kv_cache,
    window_start, update_cache)`` -> :class:`DiffusionLMOutput`; see :mod:`igpo_kit.models.kv_cache` for the cache
    semantics.
    """

    supports_gradient_checkpointing = True
    _supports_sdpa = True
    upstream_code: tuple[str, ...] = ()  # the checkpoint's .py files save_pretrained copies beside the weights

    def _init_weights(self, module):
        std = getattr(self.config, "init_std", None) or getattr(self.config, "initializer_range", 0.02)
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=std)
            if getattr(module, "bias", None) is not None:
                module.bias.data.zero_()
        elif isinstance(module, RMSNorm):
            module.weight.data.fill_(1.0)

    # --- forward ------------------------------------------------------------------------------------------------

    def _context(self, input_ids, attention_mask, kv_cache, window_start, use_cache, update_cache):
        width = input_ids.shape[1]
        start = 0 if window_start is None else window_start
        total = attention_mask.shape[1] if attention_mask is not None else (
            kv_cache.length if window_start is not None else width)
        if not 0 <= start < start + width <= total:
            raise ValueError(f"window [{start}, {start + width}) does not fit the {total} positions of the cache")
        positions = padding_positions(attention_mask, total, input_ids.device)[:, start:start + width]
        cos, sin = rotary(positions, self.head_dim, self.rope_theta)
        key_mask = None if attention_mask is None else attention_mask.bool()[:, None, None, :]  # no host sync
        if window_start is None:
            kv_cache = KVCache() if use_cache else None
        elif kv_cache is None:
            raise ValueError("window_start needs kv_cache (refresh it with a use_cache=True forward first)")
        dropout = self.attention_dropout if self.training else 0.0
        return AttentionContext(cos, sin, key_mask, kv_cache, window_start, update_cache, dropout)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        logits_to_keep: Any = None,
        logits_rows: torch.Tensor | None = None,
        use_cache: bool = False,
        kv_cache: KVCache | None = None,
        window_start: int | None = None,
        update_cache: bool = False,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs,
    ) -> DiffusionLMOutput:
        """Mask-predictor logits.

        Args:
            input_ids: ``[B, W]`` (``W = T`` unless ``window_start`` is given).
            attention_mask: ``[B, T]`` padding mask (1 = real token) or None.
            logits_to_keep: positions of the window whose logits are computed (see :func:`select_positions`).
            logits_rows: the entries of the kept ``[B, W']`` grid whose logits are computed (:func:`select_rows`):
                a bool mask ``[B, W']`` or flat row-major indices ``[N]``; the logits are then ``[N, V]``.
            use_cache: also return a refreshed :class:`KVCache` of all positions (full forward only).
            kv_cache, window_start, update_cache: a window step over ``[window_start, window_start + W)``.
            inputs_embeds: ``[B, W, C]`` instead of ``input_ids``.
        Returns:
            :class:`DiffusionLMOutput` (``logits`` ``[B, W', V]``, or ``[N, V]`` with ``logits_rows``).
        """
        hidden = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        ref = input_ids if input_ids is not None else hidden[..., 0]
        ctx = self._context(ref, attention_mask, kv_cache, window_start, use_cache, update_cache)
        checkpointing = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for layer, block in enumerate(self.blocks()):
            if checkpointing and ctx.kv_cache is None:
                hidden = self._gradient_checkpointing_func(block.__call__, hidden, ctx, layer)
            else:
                hidden = block(hidden, ctx, layer)
        hidden = self.final_norm()(select_positions(hidden, logits_to_keep, logits_rows))
        logits = self.project(hidden)
        return DiffusionLMOutput(logits=logits, kv_cache=ctx.kv_cache if window_start is None else None)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.get_input_embeddings()(input_ids)

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.get_output_embeddings()(hidden)

    # --- loading and saving ---------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """``PreTrainedModel.from_pretrained``; remembers the folder holding the checkpoint's upstream ``.py`` files."""
        from igpo_kit.models.remote import code_dir

        out = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model = out[0] if isinstance(out, tuple) else out
        model._igpo_kit_code_dir = code_dir(str(pretrained_model_name_or_path), model.config)
        return out

    def save_pretrained(self, save_directory, *args, **kwargs):
        """``PreTrainedModel.save_pretrained``, plus the checkpoint's upstream ``.py`` files and ``auto_map`` (copied
        from the folder it was loaded from), so the folder also loads with plain transformers +
        ``trust_remote_code=True`` as the hub checkpoint does."""
        super().save_pretrained(save_directory, *args, **kwargs)
        from igpo_kit.models.remote import copy_code

        target = Path(save_directory)
        source = getattr(self, "_igpo_kit_code_dir", None)
        for name in ("generation_config.json",):  # the upstream code may read it (Dream's from_pretrained does)
            if source is not None and (source / name).is_file() and not (target / name).exists():
                shutil.copyfile(source / name, target / name)
        if copy_code(source, self.config, target) and getattr(self.config, "auto_map", None):
            cfg = json.loads((target / "config.json").read_text())
            cfg["auto_map"] = self.config.auto_map
            (target / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
