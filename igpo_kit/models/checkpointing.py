"""Gradient (activation) checkpointing of a DiffusionLM's network: layer activations are recomputed in the backward
pass instead of being kept from the forward, trading ~1/3 more compute of the update for memory that no longer grows
with the number of layers (the released IGPO run checkpoints every layer).

:func:`enable_gradient_checkpointing` turns it on through transformers' ``activation_checkpointing_enable`` (non-
reentrant ``torch.utils.checkpoint``), on the base network under a peft LoRA wrapper. transformers checkpoints a layer
only when the layer is in training mode; the RL loop runs its forwards in eval mode (dropout off, so the policy ratio
is exactly 1 at the first inner step), so :func:`checkpoint_in_eval` marks just the checkpointed layers as training:
their dropout modules and attention stay in eval mode, the numbers are those of eval mode.
"""

from __future__ import annotations

import torch

__all__ = ["enable_gradient_checkpointing", "checkpoint_in_eval", "is_checkpointing"]


def _base(network: torch.nn.Module) -> torch.nn.Module:
    return network.get_base_model() if hasattr(network, "get_base_model") else network


def enable_gradient_checkpointing(network: torch.nn.Module, name: str = "model") -> None:
    """Checkpoint every layer of ``network`` (a transformers model, possibly under a peft wrapper).

    Raises:
        ConfigError: the network cannot checkpoint its layers (not a transformers model, or one whose class says
            ``supports_gradient_checkpointing = False``), naming it.
    """
    from igpo_kit.errors import ConfigError

    base = _base(network)
    enable = getattr(base, "activation_checkpointing_enable", None) or getattr(base, "gradient_checkpointing_enable",
                                                                               None)
    if enable is None or not getattr(base, "supports_gradient_checkpointing", False):
        raise ConfigError(f"gradient_checkpointing = True, but {name} ({type(base).__name__}) cannot checkpoint its "
                          f"layers (no transformers gradient checkpointing support); set gradient_checkpointing = False")
    enable({"use_reentrant": False})


def is_checkpointing(network: torch.nn.Module) -> bool:
    """Whether some layer of ``network`` has gradient checkpointing on."""
    return any(getattr(m, "gradient_checkpointing", False) is True for m in network.modules())


def checkpoint_in_eval(network: torch.nn.Module) -> None:
    """After ``network.eval()``: set ``training`` on the checkpointed layers only (not recursively), so that they
    recompute their activations in the backward pass while every dropout and attention module stays in eval mode."""
    for m in network.modules():
        if getattr(m, "gradient_checkpointing", False) is True:
            m.training = True
