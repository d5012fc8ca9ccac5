"""Mixed precision with fp32 master weights (full fine-tuning in bf16 done right).

A bf16 weight has 8 bits of mantissa: next to a weight of magnitude 0.02 the nearest other bf16 value is ~1e-4
away, so an AdamW update of ~lr = 5e-7 (the paper's RL learning rate) rounds away and full fine-tuning of a model
held in bf16 does not move it. The fix keeps the weights that train in float32 (the master weights, updated by the
optimizer in float32) and runs the compute in bf16 under autocast (accelerate's ``mixed_precision="bf16"``), or lets
DeepSpeed do the same (its bf16 mode keeps fp32 master weights and optimizer states in the ZeRO partitions).
Frozen weights (a LoRA base, a reference copy) stay in bf16.
"""

from __future__ import annotations

import torch

__all__ = ["fp32_master_weights"]


def fp32_master_weights(network: torch.nn.Module) -> int:
    """Cast every trainable 16-bit floating-point parameter of ``network`` to float32 in place.

    Returns:
        the number of parameters (elements) cast.
    """
    cast = 0
    for p in network.parameters():
        if p.requires_grad and p.dtype in (torch.bfloat16, torch.float16):
            p.data = p.data.float()
            cast += p.numel()
    return cast
