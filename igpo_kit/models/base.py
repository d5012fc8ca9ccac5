"""The adapter every sampler, log-prob estimator and trainer talks to: a masked diffusion LM.

``f_theta(x)`` (spec sec. 0) is the mask predictor: full bidirectional attention, logits ``[B, T, V]`` where the
logits at position ``i`` score the token at ``i`` -- for every model. Checkpoints with the autoregressive
convention (Dream: logits at ``i`` score token ``i + 1``) set ``logits_shift = 1`` and this adapter undoes the
shift, once, here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class DiffusionLM:
    """A masked diffusion language model with its tokenizer and special ids.

    Attributes:
        network: the ``torch.nn.Module``; ``network(input_ids=x).logits`` is ``[B, T, V]``.
        tokenizer: a ``transformers`` tokenizer with a chat template.
        mask_id: the mask token M (LLaDA: 126336).
        eos_id: end of text, also the padding the model learns to emit after its answer (LLaDA: 126081).
        eot_id: end of turn (LLaDA: 126348), or None.
        logits_slice: whether ``network`` accepts ``logits_to_keep`` (a tensor of positions), so a sampler can
            skip the LM head outside the active block.
        kv_cache: whether ``network`` has the native interface (:mod:`igpo_kit.models.native`: the key/value cache
            of :mod:`igpo_kit.models.kv_cache` and ``logits_rows``, the LM head on selected rows only).
        suppress_mask: set the mask token's logit to the dtype's minimum (an untrained or tiny model would
            otherwise predict M itself; real checkpoints never do, so LLaDA leaves this off).
        padding_mask_4d: pass left padding as a 4-D boolean key mask ``[B, 1, 1, T]``. Needed for decoder
            architectures made bidirectional (the tiny Gemma): transformers 5 turns a 2-D padding mask into a
            causal one for them, which would silently break the bidirectional mask predictor.
    """

    network: torch.nn.Module
    tokenizer: Any
    mask_id: int
    eos_id: int
    eot_id: int | None = None
    pad_id: int | None = None
    logits_slice: bool = False
    suppress_mask: bool = False
    padding_mask_4d: bool = False
    padding_position_ids: bool = False
    logits_shift: int = 0
    kv_cache: bool = False
    max_positions: int | None = None
    name: str = "model"
    meta: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def to(self, device=None, dtype=None) -> "DiffusionLM":
        """Move (and/or cast) the network in place; returns ``self``."""
        self.network.to(device=device, dtype=dtype)
        return self

    @property
    def vocab_size(self) -> int:
        return self.network.get_output_embeddings().weight.shape[0]

    def check_length(self, length: int, what: str = "input") -> None:
        """Refuse a sequence longer than ``max_positions`` (a ConfigError, before any forward pass)."""
        if self.max_positions is not None and length > self.max_positions:
            from igpo_kit.errors import ConfigError

            raise ConfigError(f"{what} of {length} tokens is longer than {self.name}'s maximum of {self.max_positions} "
                              "positions (max_sequence_length / max_position_embeddings in its config.json): shorten "
                              "the prompt or gen_length")

    def _source(self, length: int, positions: slice | None, device) -> torch.Tensor | None:
        """Network positions whose logits score the tokens at ``positions`` (``[T']``), or None for all unshifted."""
        if positions is None and not self.logits_shift:
            return None
        idx = torch.arange(length, device=device)
        idx = idx if positions is None else idx[positions]
        return (idx - self.logits_shift).clamp(min=0)

    def _kwargs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"input_ids": input_ids}
        if attention_mask is not None:  # no `.all()` test here: it would sync host and device on every forward
            mask = attention_mask.bool()
            kwargs["attention_mask"] = mask[:, None, None, :] if self.padding_mask_4d else attention_mask
            if self.padding_position_ids:
                kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        return kwargs

    def logits(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        positions: slice | None = None,
        kv_cache=None,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mask-predictor logits; the logits at position ``i`` score the token at ``i``.

        Args:
            input_ids: ``[B, T]`` token ids (``mask_id`` where masked).
            attention_mask: optional ``[B, T]`` (1 = real token, 0 = left padding); pass None when nothing is
                padded (callers test that once per batch, not once per forward).
            positions: if given, only logits for ``positions`` (a slice of T) are returned: ``[B, T', V]``; the LM
                head is applied to those positions only when the network allows it.
            kv_cache: a :class:`~igpo_kit.models.kv_cache.KVCache` from :meth:`logits_and_cache` (needs
                ``positions``, a contiguous slice): only the window ``positions`` runs through the network, the other
                positions' keys/values come from the cache.
            rows: if given, only the logits of these entries of the ``[B, T']`` grid of ``positions`` are returned,
                ``[N, V]`` in row-major order: a bool mask ``[B, T']`` or its flat indices ``[N]``
                (``mask.reshape(-1).nonzero()``: indices need no host-device sync). A native network (``kv_cache``
                interface) runs its final norm and LM head on those rows only; any other computes ``[B, T', V]``
                and picks them.
        Returns:
            float logits ``[B, T, V]`` (or ``[B, T', V]``, or ``[N, V]`` with ``rows``), in the network's dtype.
        """
        self.check_length(input_ids.shape[1])
        if kv_cache is not None:
            out = self._window_logits(input_ids, attention_mask, positions, kv_cache, rows)
        else:
            src = self._source(input_ids.shape[1], positions, input_ids.device)
            kwargs = self._kwargs(input_ids, attention_mask)
            if rows is not None and self.kv_cache:  # the native interface: the head on the rows only
                out = self.network(**kwargs, logits_to_keep=src, logits_rows=rows).logits
            elif src is not None and self.logits_slice:
                out = _pick_rows(self.network(**kwargs, logits_to_keep=src).logits, rows)
            else:
                out = self.network(**kwargs).logits
                out = _pick_rows(out if src is None else out[:, src], rows)
        return self._suppress(out)

    def logits_and_cache(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        positions: slice | None = None,
        rows: torch.Tensor | None = None,
    ):
        """One full forward that also refreshes the key/value cache of all T positions (block decoding).

        Returns:
            logits as :meth:`logits` (uncached; ``[N, V]`` with ``rows``) and the
            :class:`~igpo_kit.models.kv_cache.KVCache`.
        """
        if not self.kv_cache:
            raise ValueError(f"{self.name} has no key/value cache (native LLaDA / Dream only)")
        self.check_length(input_ids.shape[1])
        src = self._source(input_ids.shape[1], positions, input_ids.device)
        out = self.network(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=src, logits_rows=rows,
                           use_cache=True)
        return self._suppress(out.logits), out.kv_cache

    def _window_logits(self, input_ids, attention_mask, positions, kv_cache, rows=None) -> torch.Tensor:
        """Logits of the tokens at ``positions`` (their ``rows``) from a window step (a shifted model runs one
        position earlier)."""
        if not self.kv_cache:
            raise ValueError(f"{self.name} has no key/value cache (native LLaDA / Dream only)")
        start, stop, step = positions.indices(input_ids.shape[1]) if positions is not None else (0, 0, 0)
        if positions is None or step != 1 or stop <= start:
            raise ValueError("a cached forward needs positions = a non-empty contiguous slice (the window)")
        first = max(start - self.logits_shift, 0)
        keep = torch.arange(start, stop, device=input_ids.device) - self.logits_shift
        out = self.network(input_ids=input_ids[:, first:stop], attention_mask=attention_mask, kv_cache=kv_cache,
                           window_start=first, logits_to_keep=keep.clamp(min=0) - first, logits_rows=rows)
        return out.logits

    def _suppress(self, out: torch.Tensor) -> torch.Tensor:
        if self.suppress_mask:
            out = out.clone() if out.requires_grad else out
            out[..., self.mask_id] = torch.finfo(out.dtype).min
        return out

    def chat_prompt(self, messages: list[dict], prefill: str = "") -> list[int]:
        """Token ids of ``messages`` under the tokenizer's chat template, with the generation prompt and prefill."""
        return chat_prompt_ids(self.tokenizer, messages, prefill)

    def decode(self, ids) -> str:
        """Decode completion ids, skipping special tokens (EOS, EOT, mask); hint tokens are ordinary text."""
        return self.tokenizer.decode(ids, skip_special_tokens=True)


def _pick_rows(logits: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """``logits`` ``[B, T', V]``, or their ``rows`` ``[N, V]`` (:func:`~igpo_kit.models.native.select_rows`)."""
    if rows is None:
        return logits
    from igpo_kit.models.native import select_rows

    return select_rows(logits, rows)


def chat_prompt_ids(tokenizer: Any, messages: list[dict], prefill: str = "") -> list[int]:
    """Token ids of ``messages`` under ``tokenizer``'s chat template, with the generation prompt and ``prefill``
    (what :meth:`DiffusionLM.chat_prompt` feeds every sampler; needs the tokenizer only, no weights)."""
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tokenizer(text + prefill, add_special_tokens=False)["input_ids"]


def left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists to one batch.

    Returns:
        ids ``[B, P]`` (LongTensor, ``pad_id`` on the left) and attention_mask ``[B, P]`` (1 = real token).
    """
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        if s:
            ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s):] = 1
    return ids, mask
