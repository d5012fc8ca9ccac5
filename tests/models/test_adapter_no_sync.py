"""The adapter never syncs host and device per forward: no ``.all()`` / ``.item()`` / ``bool()`` on the padding mask
(each would wait for the GPU on every one of the sampler's forward passes)."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from igpo_kit.models.base import DiffusionLM

_SYNCS = {torch.Tensor.all, torch.Tensor.any, torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__bool__,
          torch.all, torch.any}


class NoSync(torch.Tensor):
    """A tensor that fails on every operation that reads its values back to the host."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in _SYNCS:
            raise AssertionError(f"host-device sync: {func.__name__}")
        return super().__torch_function__(func, types, args, kwargs or {})


class Net(torch.nn.Module):
    def forward(self, input_ids, attention_mask=None, logits_to_keep=None):
        self.mask = attention_mask
        return SimpleNamespace(logits=torch.zeros(*input_ids.shape, 7))


def test_padding_mask_is_passed_on_without_reading_it():
    for four_d in (False, True):
        lm = DiffusionLM(network=Net(), tokenizer=None, mask_id=3, eos_id=1, padding_mask_4d=four_d)
        mask = torch.tensor([[0, 1, 1], [1, 1, 1]]).as_subclass(NoSync)
        assert lm.logits(torch.ones(2, 3, dtype=torch.long), attention_mask=mask).shape == (2, 3, 7)
        assert tuple(lm.network.mask.shape) == ((2, 1, 1, 3) if four_d else (2, 3))
        lm.logits(torch.ones(2, 3, dtype=torch.long))  # no mask: nothing passed
        assert lm.network.mask is None
