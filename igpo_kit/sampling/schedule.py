"""Block schedule of LLaDA decoding (spec sec. 1.2).

The generation region of length ``L`` (``gen_length``) is split into ``L / block_length`` blocks decoded left
to right; each block gets ``S = steps / num_blocks`` denoising steps. At the start of a block, row ``j`` has
``m_j`` masks in it (hints excluded, spec sec. 2); step ``i`` commits ``num_transfer_tokens[j, i]`` of them,
``floor(m_j / S) + 1`` for ``i < m_j mod S`` and ``floor(m_j / S)`` after (remainder front-loaded).
"""

from __future__ import annotations

import torch


def check_lengths(gen_length: int, block_length: int, steps: int) -> tuple[int, int]:
    """Validate the decoding lengths; return ``(num_blocks, steps_per_block)``.

    Raises:
        ValueError (:class:`~igpo_kit.errors.ConfigError`): ``gen_length % block_length != 0`` or
            ``steps % num_blocks != 0`` (the reference asserts both), or a non-positive length.
    """
    from igpo_kit.errors import ConfigError

    for name, value in (("gen_length", gen_length), ("block_length", block_length), ("steps", steps)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"sampler: {name} must be a positive integer, got {value!r}")
    if gen_length % block_length:
        raise ConfigError(
            f"sampler: gen_length={gen_length} is not a multiple of block_length={block_length} "
            f"(LLaDA decodes whole blocks; spec sec. 1.2)"
        )
    num_blocks = gen_length // block_length
    if steps % num_blocks:
        raise ConfigError(
            f"sampler: steps={steps} is not a multiple of the number of blocks {num_blocks} "
            f"(= gen_length {gen_length} / block_length {block_length}); every block gets steps/num_blocks steps "
            f"(spec sec. 1.2); e.g. steps={max(1, steps // num_blocks) * num_blocks}"
        )
    return num_blocks, steps // num_blocks


def block_bounds(prompt_length: int, gen_length: int, block_length: int) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` absolute positions of each block in ``[B, P + L]`` sequences."""
    if gen_length % block_length:
        raise ValueError(f"gen_length={gen_length} is not a multiple of block_length={block_length}")
    return [
        (prompt_length + b * block_length, prompt_length + (b + 1) * block_length)
        for b in range(gen_length // block_length)
    ]


def block_mask_counts(masked: torch.Tensor, prompt_length: int, block_length: int) -> torch.Tensor:
    """Masks per row and block.

    Args:
        masked: ``[B, P + L]`` bool, True at masked positions that are to be generated (hints, prompt: False).
    Returns:
        ``[B, num_blocks]`` int64 counts ``m_j`` (on ``masked``'s device).
    """
    gen = masked[:, prompt_length:]
    b, length = gen.shape
    if length % block_length:
        raise ValueError(f"generation length {length} is not a multiple of block_length={block_length}")
    return gen.reshape(b, length // block_length, block_length).sum(-1, dtype=torch.long)


def num_transfer_tokens(mask_counts: torch.Tensor, steps: int) -> torch.Tensor:
    """Tokens committed per row and step inside one block (spec sec. 1.2, invariant 1).

    Args:
        mask_counts: ``[B]`` int, the masks ``m_j`` of each row in the block at its start (hints excluded).
        steps: ``S``, the steps of the block.
    Returns:
        ``[B, S]`` int64: ``floor(m_j / S) + 1`` for ``i < m_j mod S``, else ``floor(m_j / S)``; rows sum to ``m_j``.
    """
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    counts = mask_counts.to(torch.long).reshape(-1)
    base = torch.div(counts, steps, rounding_mode="floor")
    remainder = counts - base * steps
    i = torch.arange(steps, device=counts.device)
    return base[:, None] + (i[None, :] < remainder[:, None]).to(torch.long)
