"""The adapter every sampler, log-prob estimator and trainer talks to: a masked diffusion LM.

``f_theta(x)`` (spec sec. 0) is the mask predictor: full bidirectional attention, logits ``[B, T, V]``.
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
    name: str = "model"
    meta: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @property
    def vocab_size(self) -> int:
        return self.network.get_output_embeddings().weight.shape[0]

    def logits(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        positions: slice | None = None,
    ) -> torch.Tensor:
        """Mask-predictor logits.

        Args:
            input_ids: ``[B, T]`` token ids (``mask_id`` where masked).
            attention_mask: optional ``[B, T]`` (1 = real token, 0 = left padding); pass None when nothing is
                padded (callers test that once per batch, not once per forward).
            positions: if given, only logits for ``positions`` (a slice of T) are returned: ``[B, T', V]``; the LM
                head is applied to those positions only when the network allows it.
        Returns:
            float logits ``[B, T, V]`` (or ``[B, T', V]``), in the network's dtype.
        """
        kwargs: dict[str, Any] = {"input_ids": input_ids}
        if attention_mask is not None:  # no `.all()` test here: it would sync host and device on every forward
            mask = attention_mask.bool()
            kwargs["attention_mask"] = mask[:, None, None, :] if self.padding_mask_4d else attention_mask
        if positions is not None and self.logits_slice:
            idx = torch.arange(input_ids.shape[1], device=input_ids.device)[positions]
            kwargs["logits_to_keep"] = idx
            out = self.network(**kwargs).logits
        else:
            out = self.network(**kwargs).logits
            out = out if positions is None else out[:, positions]
        if self.suppress_mask:
            out = out.clone() if out.requires_grad else out
            out[..., self.mask_id] = torch.finfo(out.dtype).min
        return out

    def chat_prompt(self, messages: list[dict], prefill: str = "") -> list[int]:
        """Token ids of ``messages`` under the tokenizer's chat template, with the generation prompt and prefill."""
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text + prefill, add_special_tokens=False)["input_ids"]

    def decode(self, ids) -> str:
        """Decode completion ids, skipping special tokens (EOS, EOT, mask); hint tokens are ordinary text."""
        return self.tokenizer.decode(ids, skip_special_tokens=True)


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
