"""Line-by-line transcriptions of the reference samplers, for tests and for ``bench/sampler.py`` (the baseline).

* :func:`generate`: ML-GSAI/LLaDA ``generate.py::generate``, the float64-softmax version (before commit
  ``f51cb17``), spec sec. 1.3. Full logits ``[B, T, V]`` at every step, no block slicing, full-shape noise.
* :func:`generate_inpainting`: facebookresearch/igpo ``utils/generate.py::generate_inpainting`` given the
  hints (spec sec. 1-2): ``generation_mask`` / ``fixed_positions``, block skip, step-loop break, EOS early exit.
  Hint construction (spec sec. 3) is not part of it: the hints come in as ``hint_ids`` / ``hint_mask``.

Deviations from the originals, none of which changes a token: the random draws come from the ``generator``
argument instead of the global RNG (same calls, same shapes, same order: ``torch.rand_like(logits, float64)``
becomes ``torch.rand(logits.shape, float64, generator=...)``), the model is called through the
:class:`~igpo_kit.models.base.DiffusionLM` adapter (``model.logits(x)`` instead of ``model(x).logits``), the
mask/EOS ids default to the adapter's, and ``assert`` becomes ``ValueError``. Do not optimise this file.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from igpo_kit.models.base import DiffusionLM


def add_gumbel_noise(logits, temperature, generator=None):
    """The Gumbel max is a method for sampling categorical distributions.
    According to arXiv:2409.02908, for MDM, low-precision Gumbel Max improves perplexity score but reduces
    generation quality. Thus, we use float64.
    """
    if temperature == 0:
        return logits
    logits = logits.to(torch.float64)
    noise = torch.rand(logits.shape, dtype=torch.float64, device=logits.device, generator=generator)
    gumbel_noise = (-torch.log(noise)) ** temperature
    return logits.exp() / gumbel_noise


def get_num_transfer_tokens(mask_index, steps):
    """In the reverse process, the interval [0, 1] is uniformly discretized into steps intervals.
    Furthermore, because LLaDA employs a linear noise schedule (as defined in Eq. (8)),
    the expected number of tokens transitioned at each step should be consistent.

    This function is designed to precompute the number of tokens that need to be transitioned at each step.
    """
    mask_num = mask_index.sum(dim=1, keepdim=True)

    base = mask_num // steps
    remainder = mask_num % steps

    num_transfer_tokens = torch.zeros(mask_num.size(0), steps, device=mask_index.device, dtype=torch.int64) + base

    for i in range(mask_num.size(0)):
        num_transfer_tokens[i, : remainder[i]] += 1

    return num_transfer_tokens


@torch.no_grad()
def generate(
    model: DiffusionLM,
    prompt,
    steps=128,
    gen_length=128,
    block_length=128,
    temperature=0.0,
    cfg_scale=0.0,
    remasking="low_confidence",
    mask_id=None,
    generator=None,
):
    """LLaDA reference sampler (float64 softmax version).

    Args:
        model: Mask predictor.
        prompt: A tensor of shape (1, L).
        steps: Sampling steps, less than or equal to gen_length.
        gen_length: Generated answer length.
        block_length: Block length, less than or equal to gen_length. If less than gen_length, it means using
            semi_autoregressive remasking.
        temperature: Categorical distribution sampling temperature.
        cfg_scale: Unsupervised classifier-free guidance scale.
        remasking: Remasking strategy. 'low_confidence' or 'random'.
        mask_id: The token id of [MASK] is 126336 (default: the adapter's).
        generator: replaces the global torch RNG of the original.
    Returns:
        x: ``[B, P + L]``.
    """
    if mask_id is None:
        mask_id = model.mask_id
    x = torch.full((prompt.shape[0], prompt.shape[1] + gen_length), mask_id, dtype=torch.long).to(model.device)
    x[:, : prompt.shape[1]] = prompt.clone()

    prompt_index = x != mask_id

    if gen_length % block_length != 0:
        raise ValueError("gen_length % block_length != 0")
    num_blocks = gen_length // block_length

    if steps % num_blocks != 0:
        raise ValueError("steps % num_blocks != 0")
    steps = steps // num_blocks

    for num_block in range(num_blocks):
        block_mask_index = (
            x[:, prompt.shape[1] + num_block * block_length : prompt.shape[1] + (num_block + 1) * block_length :]
            == mask_id
        )
        num_transfer_tokens = get_num_transfer_tokens(block_mask_index, steps)
        for i in range(steps):
            mask_index = x == mask_id
            if cfg_scale > 0.0:
                un_x = x.clone()
                un_x[prompt_index] = mask_id
                x_ = torch.cat([x, un_x], dim=0)
                logits = model.logits(x_)
                logits, un_logits = torch.chunk(logits, 2, dim=0)
                logits = un_logits + (cfg_scale + 1) * (logits - un_logits)
            else:
                logits = model.logits(x)

            logits_with_noise = add_gumbel_noise(logits, temperature=temperature, generator=generator)
            x0 = torch.argmax(logits_with_noise, dim=-1)  # b, l

            if remasking == "low_confidence":
                p = F.softmax(logits.to(torch.float64), dim=-1)
                x0_p = torch.squeeze(torch.gather(p, dim=-1, index=torch.unsqueeze(x0, -1)), -1)  # b, l
            elif remasking == "random":
                x0_p = torch.rand((x0.shape[0], x0.shape[1]), device=x0.device, generator=generator)
            else:
                raise NotImplementedError(remasking)

            x0_p[:, prompt.shape[1] + (num_block + 1) * block_length :] = -np.inf

            x0 = torch.where(mask_index, x0, x)
            confidence = torch.where(mask_index, x0_p, -np.inf)

            transfer_index = torch.zeros_like(x0, dtype=torch.bool, device=x0.device)
            for j in range(confidence.shape[0]):
                _, select_index = torch.topk(confidence[j], k=num_transfer_tokens[j, i])
                transfer_index[j, select_index] = True
            x[transfer_index] = x0[transfer_index]

    return x


@torch.no_grad()
def generate_inpainting(
    model: DiffusionLM,
    prompt,
    hint_ids=None,
    hint_mask=None,
    steps=128,
    gen_length=128,
    block_length=128,
    temperature=0.0,
    cfg_scale=0.0,
    remasking="low_confidence",
    mask_id=None,
    eos_id=None,
    eos_early_exit=True,
    generator=None,
):
    """IGPO ``generate_inpainting`` with the hints given (spec sec. 1-2).

    Args:
        hint_ids, hint_mask: ``[B, L]`` hint tokens and positions in the generation region (None: plain path).
        eos_early_exit: IGPO always exits early (True); False gives the path without it.
        (the rest as :func:`generate`)
    Returns:
        ``(x [B, P + L], fixed_positions [B, P + L], first_input [B, P + L])``.
    """
    if mask_id is None:
        mask_id = model.mask_id
    if eos_id is None:
        eos_id = model.eos_id
    x = torch.full((prompt.shape[0], prompt.shape[1] + gen_length), mask_id, dtype=torch.long).to(model.device)
    x[:, : prompt.shape[1]] = prompt.clone()

    generation_mask = torch.zeros_like(x, dtype=torch.bool)
    generation_mask[:, prompt.shape[1] :] = True
    if hint_ids is not None:
        hint_ids = hint_ids.to(x.device)
        hint_mask = hint_mask.to(x.device)
        for j in range(x.shape[0]):
            row = x[j, prompt.shape[1] :]
            row[hint_mask[j]] = hint_ids[j][hint_mask[j]]
            generation_mask[j, prompt.shape[1] :] = ~hint_mask[j]
    fixed_positions = ~generation_mask
    first_input = x.clone()

    if gen_length % block_length != 0:
        raise ValueError("gen_length % block_length != 0")
    num_blocks = gen_length // block_length

    if steps % num_blocks != 0:
        raise ValueError("steps % num_blocks != 0")
    steps = steps // num_blocks

    for num_block in range(num_blocks):
        block_start = prompt.shape[1] + num_block * block_length
        block_end = prompt.shape[1] + (num_block + 1) * block_length
        block_mask_index = (x[:, block_start:block_end] == mask_id) & generation_mask[:, block_start:block_end]
        if not block_mask_index.any():
            continue
        num_transfer_tokens = get_num_transfer_tokens(block_mask_index, steps)
        for i in range(steps):
            mask_index = (x == mask_id) & generation_mask
            if not mask_index.any():
                break
            if cfg_scale > 0.0:
                un_x = x.clone()
                un_x[fixed_positions] = mask_id
                x_ = torch.cat([x, un_x], dim=0)
                logits = model.logits(x_)
                logits, un_logits = torch.chunk(logits, 2, dim=0)
                logits = un_logits + (cfg_scale + 1) * (logits - un_logits)
            else:
                logits = model.logits(x)

            logits_with_noise = add_gumbel_noise(logits, temperature=temperature, generator=generator)
            x0 = torch.argmax(logits_with_noise, dim=-1)

            if remasking == "low_confidence":
                p = F.softmax(logits.to(torch.float64), dim=-1)
                x0_p = torch.squeeze(torch.gather(p, dim=-1, index=torch.unsqueeze(x0, -1)), -1)
            elif remasking == "random":
                x0_p = torch.rand((x0.shape[0], x0.shape[1]), device=x0.device, generator=generator)
            else:
                raise NotImplementedError(remasking)

            x0_p[:, block_end:] = -np.inf
            x0_p[fixed_positions] = -np.inf

            x0 = torch.where(mask_index, x0, x)
            confidence = torch.where(mask_index, x0_p, -np.inf)

            transfer_index = torch.zeros_like(x0, dtype=torch.bool, device=x0.device)
            for j in range(confidence.shape[0]):
                if num_transfer_tokens[j, i] > 0:
                    _, select_index = torch.topk(confidence[j], k=num_transfer_tokens[j, i])
                    transfer_index[j, select_index] = True
            transfer_index = transfer_index & mask_index
            x[transfer_index] = x0[transfer_index]

        if eos_early_exit and (x[:, block_start:block_end] == eos_id).all():
            x[(x == mask_id) & generation_mask] = eos_id
            return x, fixed_positions, first_input

    return x, fixed_positions, first_input
