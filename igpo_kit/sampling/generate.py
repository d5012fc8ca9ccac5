"""LLaDA semi-autoregressive block decoding, plain and with inpainting: ONE code path (spec sec. 1-2).

``x = [prompt; hints-or-M]`` of shape ``[B, P + L]``; the generation region is decoded block by block
(``block_length`` positions, ``S = steps / num_blocks`` steps each). At every step the mask predictor
``f_theta(x)`` is evaluated, a token ``x0`` is sampled for every masked position of the active block (Gumbel-max
at temperature tau, :mod:`igpo_kit.sampling.noise`) and the ``num_transfer_tokens[j, i]`` most confident ones
of row ``j`` are committed (:mod:`igpo_kit.sampling.schedule`). Committed tokens are never remasked.

Inpainting (IGPO, spec sec. 2): hint tokens are written into the generation region before decoding. They are
fixed (never predicted, confidence -inf, ``x0 = where(mask, x0, x)``), visible to the model from step 0
(bidirectional attention: "future conditioning") and count against their block's budget (``m_j`` counts only
the non-hint masks). A block without masks in any row is skipped (no model call, no random draw).

Speed: only the active block's logits are computed (``model.logits(..., positions=slice(block))``, the adapter
skips the LM head elsewhere when it can), and in ``noise="fast"`` mode only those of its still-masked positions
(``rows=``: a native network runs its LM head on those rows only; the same tokens); noise and softmax never touch
positions outside the block; steps in which no row commits anything cost no forward pass. In ``noise="exact"`` mode the random draws replicate the
reference (full ``[B, T, V]`` float64 noise, ``[B, T]`` remasking uniforms, same order), so the output equals
:func:`igpo_kit.sampling.reference.generate` token for token under the same generator seed.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable

import torch

from igpo_kit.errors import ConfigError
from igpo_kit.models.base import DiffusionLM
from igpo_kit.sampling import noise as _noise
from igpo_kit.sampling.schedule import block_mask_counts, check_lengths, num_transfer_tokens

REMASKING = ("low_confidence", "random")


@dataclass
class Generation:
    """The result of :func:`generate`.

    Attributes:
        sequences: ``[B, P + L]`` int64, prompt + completion (no mask left unless generation was cut short).
        fixed: ``[B, P + L]`` bool, the positions never changed by decoding: prompt (with its padding) and hints
            (IGPO's ``fixed_positions``; ``fixed[:, P:]`` is the hint mask).
        prompt_length: ``P``.
        hint_mask: ``[B, L]`` bool, hint positions in the generation region (all False without hints).
        nfe: forward passes of the mask predictor (a classifier-free-guidance pass on ``[2B, T]`` counts once).
        early_exit: whether the IGPO EOS early exit fired (remaining masks were set to EOS).
    """

    sequences: torch.Tensor
    fixed: torch.Tensor
    prompt_length: int
    hint_mask: torch.Tensor
    nfe: int = 0
    early_exit: bool = False

    @property
    def completions(self) -> torch.Tensor:
        """``[B, L]`` the generation region of ``sequences`` (hints included)."""
        return self.sequences[:, self.prompt_length :]


@dataclass(frozen=True)
class StepInfo:
    """What one denoising step did; passed to ``generate(..., on_step=...)`` (for tests and instrumentation).

    Attributes:
        block, step: block index ``b`` and step index ``i`` inside the block.
        block_start, block_end: absolute positions ``[start, end)`` of the block.
        sequences: ``[B, P + L]`` the sequences after the step (a live view: copy it to keep it).
        transferred: ``[B, P + L]`` bool, positions committed at this step.
        num_transfer: ``[B]`` int64, the schedule ``num_transfer_tokens[:, i]`` of this step.
        called_model: whether a forward pass ran (False for steps in which no row commits a token).
    """

    block: int
    step: int
    block_start: int
    block_end: int
    sequences: torch.Tensor
    transferred: torch.Tensor
    num_transfer: torch.Tensor
    called_model: bool


def _check_options(temperature: float, remasking: str, cfg_scale: float, noise: str) -> None:
    problems = []
    if remasking not in REMASKING:
        problems.append(f"sampler: remasking={remasking!r} is not one of {', '.join(REMASKING)}")
    if noise not in _noise.NOISE_MODES:
        problems.append(f"sampler: noise={noise!r} is not one of {', '.join(_noise.NOISE_MODES)}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        problems.append(f"sampler: temperature must be a finite number >= 0, got {temperature!r}")
    if not (isinstance(cfg_scale, (int, float)) and math.isfinite(cfg_scale) and cfg_scale >= 0):
        problems.append(f"sampler: cfg_scale must be a finite number >= 0, got {cfg_scale!r}")
    if problems:
        raise ConfigError(*problems)


def guided_input(
    model: DiffusionLM,
    x: torch.Tensor,
    attention_mask: torch.Tensor | None,
    fixed: torch.Tensor,
    cfg_scale: float,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The network input of one step: ``x [B, T]`` alone, or with classifier-free guidance ``[x; un_x]``
    (``[2B, T]``, ``un_x`` = ``x`` with the prompt AND the hints set to ``M``) and the mask repeated."""
    if cfg_scale > 0:
        un_x = x.clone()
        un_x[fixed] = model.mask_id
        mask = None if attention_mask is None else torch.cat([attention_mask, attention_mask], dim=0)
        return torch.cat([x, un_x], dim=0), mask
    return x, attention_mask


def guided_rows(rows: torch.Tensor | None, cells: int, cfg_scale: float) -> torch.Tensor | None:
    """The rows of :func:`guided_input`'s batch: ``rows`` ``[N]`` (flat indices into the block's ``[B, bl]``,
    ``cells = B * bl``) alone, or with guidance followed by the same rows of the unconditional half (``[2N]``)."""
    if rows is None or cfg_scale <= 0:
        return rows
    return torch.cat([rows, rows + cells])


def guided_logits(logits: torch.Tensor, cfg_scale: float) -> torch.Tensor:
    """Combine the logits of :func:`guided_input`: ``un + (cfg_scale + 1) * (cond - un)`` (``[B, ., V]``, or
    ``[N, V]`` for the :func:`guided_rows` of ``[2N, V]``)."""
    if cfg_scale > 0:
        cond, un = logits.chunk(2, dim=0)
        return un + (cfg_scale + 1) * (cond - un)
    return logits


def _block_logits(
    model: DiffusionLM,
    x: torch.Tensor,
    attention_mask: torch.Tensor | None,
    fixed: torch.Tensor,
    cfg_scale: float,
    positions: slice,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """``f_theta(x)`` logits of the block ``positions`` only: ``[B, block_length, V]`` (spec sec. 1.3 step 2), or
    of its ``rows`` only (flat indices ``[N]`` into ``[B, block_length]``): ``[N, V]``.

    With classifier-free guidance the unconditional input is ``x`` with the prompt AND the hints set to ``M``;
    ``logits = un + (cfg_scale + 1) * (cond - un)``.
    """
    inputs, mask = guided_input(model, x, attention_mask, fixed, cfg_scale)
    rows = guided_rows(rows, x[:, positions].numel(), cfg_scale)
    return guided_logits(model.logits(inputs, mask, positions=positions, rows=rows), cfg_scale)


#: ``forward(x [B, T], block: slice, new_block: bool, rows: LongTensor [N] | None) -> logits`` of one denoising
#: step: ``[B, block_length, V]``, or ``[N, V]`` for ``rows`` (flat row-major indices into ``[B, block_length]``:
#: the block's still-masked positions); ``new_block`` is True for the first forward pass of a block (a cached
#: forward refreshes its cache then).
BlockForward = Callable[[torch.Tensor, slice, bool, "torch.Tensor | None"], torch.Tensor]
#: ``factory(model, attention_mask [B, T] | None, fixed [B, T], cfg_scale) -> BlockForward``.
ForwardFactory = Callable[[DiffusionLM, "torch.Tensor | None", torch.Tensor, float], BlockForward]


def full_forward(model: DiffusionLM, attention_mask: torch.Tensor | None, fixed: torch.Tensor,
                 cfg_scale: float) -> BlockForward:
    """The exact forward: ``f_theta`` on the whole current sequence at every step (:func:`_block_logits`)."""
    return lambda x, blk, new_block, rows=None: _block_logits(model, x, attention_mask, fixed, cfg_scale, blk, rows)


def full_head(factory: ForwardFactory) -> ForwardFactory:
    """``factory``'s forward with the LM head over the whole block, the ``rows`` picked from its
    ``[B, block_length, V]`` logits afterwards: the path before the head ran on the masked rows only (the same
    tokens, slower; tests and ``bench/fast_sampler.py`` compare the two)."""

    def make(model: DiffusionLM, attention_mask, fixed, cfg_scale: float) -> BlockForward:
        step = factory(model, attention_mask, fixed, cfg_scale)

        def forward(x, blk, new_block, rows=None):
            logits = step(x, blk, new_block, None)
            return logits if rows is None else logits.flatten(0, 1).index_select(0, rows)

        return forward

    return make


def check_threshold(threshold: float | None, remasking: str) -> None:
    """Validate Fast-dLLM's confidence threshold: ``None`` (off) or in ``(0, 1]``, with ``low_confidence``."""
    if threshold is None:
        return
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ConfigError(f"sampler: threshold must be in (0, 1] (a token probability) or None, got {threshold!r}")
    if remasking != "low_confidence":
        raise ConfigError(f"sampler: threshold needs remasking='low_confidence' (it thresholds the confidence), "
                          f"got remasking={remasking!r}")


def generate(
    model: DiffusionLM,
    prompt_ids: torch.Tensor,
    *,
    gen_length: int,
    block_length: int,
    steps: int,
    temperature: float = 0.0,
    remasking: str = "low_confidence",
    cfg_scale: float = 0.0,
    attention_mask: torch.Tensor | None = None,
    hint_ids: torch.Tensor | None = None,
    hint_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    noise: str = "fast",
    eos_early_exit: bool = False,
    progress: bool = False,
    on_step: Callable[[StepInfo], None] | None = None,
    threshold: float | None = None,
    forward: ForwardFactory | None = None,
) -> Generation:
    """LLaDA block decoding with optional hints (spec sec. 1.2-1.4 and 2).

    Args:
        model: the mask predictor ``f_theta`` (:class:`~igpo_kit.models.base.DiffusionLM`).
        prompt_ids: ``[B, P]`` int64 prompts (rows = prompts x G generations); left-padded if lengths differ.
        gen_length: ``L``, a multiple of ``block_length``.
        block_length: positions per block.
        steps: total denoising steps, a multiple of ``num_blocks = L / block_length``; ``S = steps / num_blocks``.
        temperature: tau of the Gumbel-max sampling; 0 = greedy (consumes no random numbers).
        remasking: ``low_confidence`` (commit the tokens whose untempered probability is highest) or ``random``.
        cfg_scale: classifier-free guidance weight (0 = off).
        attention_mask: ``[B, P]`` 1 for real prompt tokens, 0 for left padding (the generation region is real).
        hint_ids: ``[B, L]`` hint tokens (IGPO inpainting); only the positions in ``hint_mask`` are used. Without
            ``hint_mask``, the hints are the positions where ``hint_ids != model.mask_id``.
        hint_mask: ``[B, L]`` bool, the hint positions.
        generator: the only source of randomness (needed unless ``temperature == 0`` and ``low_confidence``).
        noise: ``fast`` (noise for the active block's masked positions only) or ``exact`` (the reference's
            full-shape draws; equal to :func:`igpo_kit.sampling.reference.generate` for the same generator seed).
        eos_early_exit: IGPO's early exit: after a block, if every row's block is all EOS, set every remaining
            mask to EOS and stop.
        progress: show a progress bar over blocks on stderr.
        on_step: optional callback receiving a :class:`StepInfo` after every step (tests, instrumentation).
        threshold: Fast-dLLM's confidence-threshold parallel decoding (None = off, the schedule above): each step
            commits every masked position of the block whose confidence is ``>= threshold``, and at least the
            most confident one per row that has masks left, until the block is done; ``steps`` then only
            validates (the number of steps per block varies). Needs ``low_confidence``. An approximation.
        forward: how each step's block logits are computed (a :data:`ForwardFactory`); default
            :func:`full_forward` (exact). :mod:`igpo_kit.sampling.dual_cache` passes a cached one.
    Returns:
        :class:`Generation` (``sequences [B, P + L]``, ``fixed [B, P + L]``, ``hint_mask [B, L]``).
    Raises:
        ValueError (:class:`~igpo_kit.errors.ConfigError`): inconsistent lengths, unknown options, shapes, or
            randomness needed without a generator.
    """
    num_blocks, steps_per_block = check_lengths(gen_length, block_length, steps)
    _check_options(temperature, remasking, cfg_scale, noise)
    check_threshold(threshold, remasking)
    needs_rng = temperature > 0 or remasking == "random"
    if needs_rng and generator is None:
        raise ConfigError(
            f"sampler: temperature={temperature} / remasking={remasking!r} draws random numbers and needs a "
            "torch.Generator (generator=...); the global RNG is never used"
        )
    if prompt_ids.dim() != 2:
        raise ConfigError(f"sampler: prompt_ids must be [B, P], got shape {tuple(prompt_ids.shape)}")

    batch, plen = prompt_ids.shape
    total = plen + gen_length
    model.check_length(total, f"prompt ({plen} tokens) + gen_length ({gen_length})")
    device = model.device
    mask_id = model.mask_id
    prompt_ids = prompt_ids.to(device)

    with torch.inference_mode():
        x = torch.full((batch, total), mask_id, dtype=torch.long, device=device)
        x[:, :plen] = prompt_ids
        fixed = torch.zeros((batch, total), dtype=torch.bool, device=device)
        fixed[:, :plen] = True

        if hint_mask is not None and hint_ids is None:
            raise ConfigError("sampler: hint_mask given without hint_ids")
        if hint_ids is not None:
            hint_ids = hint_ids.to(device)
            if tuple(hint_ids.shape) != (batch, gen_length):
                raise ConfigError(f"sampler: hint_ids must be [B, L] = [{batch}, {gen_length}], got {tuple(hint_ids.shape)}")
            if hint_mask is None:
                hint_mask = hint_ids != mask_id
            hint_mask = hint_mask.to(device=device, dtype=torch.bool)
            if tuple(hint_mask.shape) != (batch, gen_length):
                raise ConfigError(f"sampler: hint_mask must be [B, L] = [{batch}, {gen_length}], got {tuple(hint_mask.shape)}")
            if bool((hint_ids[hint_mask] == mask_id).any()):
                raise ConfigError("sampler: a hint position holds the mask token (hint_mask marks it as a hint)")
            gen = x[:, plen:]
            gen[hint_mask] = hint_ids[hint_mask]
            fixed[:, plen:] = hint_mask

        full_mask = None
        if attention_mask is not None:
            attention_mask = attention_mask.to(device)
            if tuple(attention_mask.shape) != (batch, plen):
                raise ConfigError(f"sampler: attention_mask must be [B, P] = [{batch}, {plen}], got {tuple(attention_mask.shape)}")
            if not bool(attention_mask.bool().all()):
                ones = torch.ones((batch, gen_length), dtype=torch.long, device=device)
                full_mask = torch.cat([attention_mask.long(), ones], dim=1)

        masked = (x == mask_id) & ~fixed
        # Block locality: decoding block b never touches another block, so the masks each block holds when it
        # starts are known now (one device sync for the whole generation).
        counts = block_mask_counts(masked, plen, block_length).cpu()  # [B, num_blocks]
        remaining = int(counts.sum())
        nfe = 0
        early_exit = False
        vocab = None
        block_forward = (forward or full_forward)(model, full_mask, fixed, cfg_scale)

        bar = _progress(progress, num_blocks)
        with bar as task:
            for b in range(num_blocks):
                start, end = plen + b * block_length, plen + (b + 1) * block_length
                blk = slice(start, end)
                block_counts = counts[:, b]
                if int(block_counts.sum()) == 0:  # all hints (or nothing to do) in every row: skip
                    task.advance()
                    continue
                new_block = True

                def candidates() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
                    """One forward pass: candidates ``x0``, confidences and the block's masks ``[B, bl]``."""
                    nonlocal new_block, nfe, vocab
                    x_blk = x[:, blk]
                    blk_mask = (x_blk == mask_id) & ~fixed[:, blk]
                    # fast: the logits of the block's masked positions only ([N, V]); exact: the block's [B, bl, V]
                    rows = _masked_positions(blk_mask.reshape(-1), int(left.sum())) if noise == "fast" else None
                    logits = block_forward(x, blk, new_block, rows)
                    new_block = False
                    nfe += 1
                    vocab = logits.shape[-1]
                    if noise == "fast":
                        x0, confidence = _fast_candidates(logits, x_blk, rows, temperature, remasking, generator)
                    else:
                        x0, confidence = _exact_candidates(
                            logits, x_blk, blk_mask, (batch, total, vocab), blk, temperature, remasking, generator
                        )
                    return x0, confidence, blk_mask

                left = block_counts.clone()  # masks left in the block, per row
                if threshold is not None:
                    i = 0
                    while remaining and int(left.sum()):
                        x0, confidence, blk_mask = candidates()
                        transfer = _threshold_transfer(confidence, blk_mask, threshold)
                        x[:, blk] = torch.where(transfer, x0, x[:, blk])
                        k = transfer.sum(1)
                        k_host = k.cpu()
                        left -= k_host
                        remaining -= int(k_host.sum())
                        if on_step is not None:
                            moved = torch.zeros_like(fixed)
                            moved[:, blk] = transfer
                            on_step(StepInfo(b, i, start, end, x, moved, k, True))
                        i += 1
                    scheduled_steps = 0  # the threshold loop did the block
                else:
                    scheduled_steps = steps_per_block
                    schedule = num_transfer_tokens(block_counts, steps_per_block)  # [B, S] on CPU
                    schedule_dev = schedule.to(device)
                for i in range(scheduled_steps):
                    if remaining == 0:  # IGPO: no mask left anywhere in the generation region
                        break
                    k = schedule[:, i]
                    kmax = int(k.max())
                    if kmax == 0:
                        # Nobody commits a token: x cannot change, so no forward pass. The exact mode still
                        # draws what the reference draws at this step to stay on its random stream.
                        if noise == "exact":
                            if temperature > 0:
                                _noise.exact_uniform((batch, total, vocab), generator, device)
                            if remasking == "random":
                                _noise.random_confidence_exact(batch, total, generator, device)
                        if on_step is not None:
                            none = torch.zeros_like(fixed)
                            on_step(StepInfo(b, i, start, end, x, none, schedule_dev[:, i], False))
                        continue

                    x0, confidence, blk_mask = candidates()
                    top = confidence.topk(kmax, dim=1).indices  # [B, kmax]
                    keep = torch.arange(kmax, device=device)[None, :] < schedule_dev[:, i : i + 1]
                    transfer = torch.zeros_like(blk_mask).scatter_(1, top, keep)
                    x[:, blk] = torch.where(transfer, x0, x[:, blk])
                    left -= k
                    remaining -= int(k.sum())
                    if on_step is not None:
                        moved = torch.zeros_like(fixed)
                        moved[:, blk] = transfer
                        on_step(StepInfo(b, i, start, end, x, moved, schedule_dev[:, i], True))
                task.advance()
                if eos_early_exit and bool((x[:, blk] == model.eos_id).all()):
                    x[(x == mask_id) & ~fixed] = model.eos_id
                    early_exit = True
                    break

    # Clones made outside inference mode: the caller may feed them to autograd (e.g. as input_ids).
    return Generation(
        sequences=x.clone(),
        fixed=fixed.clone(),
        prompt_length=plen,
        hint_mask=fixed[:, plen:].clone(),
        nfe=nfe,
        early_exit=early_exit,
    )


def check_sampler_model(sampler, model: DiffusionLM) -> None:
    """Raise a ConfigError if ``sampler`` cannot run on ``model`` (e.g. a cached sampler on a model without a
    key/value cache); samplers without a ``check_model`` method (plugins) are taken to run on any model."""
    check = getattr(sampler, "check_model", None)
    if callable(check):
        check(model)


def _threshold_transfer(confidence: torch.Tensor, blk_mask: torch.Tensor, threshold: float) -> torch.Tensor:
    """Fast-dLLM's rule: commit the masked positions with ``confidence >= threshold``, and the most confident
    masked one of every row that has any (``confidence [B, bl]`` float64, -inf off the masks) -> ``[B, bl]`` bool."""
    top = torch.zeros_like(blk_mask).scatter_(1, confidence.argmax(dim=1, keepdim=True), True)
    return ((confidence >= threshold) | top) & blk_mask


def _masked_positions(flat_mask: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the True entries of ``flat_mask`` (``count`` of them, known on the host: no device sync)."""
    try:
        return torch.nonzero_static(flat_mask, size=count).squeeze(-1)
    except (NotImplementedError, RuntimeError):  # a backend without nonzero_static
        return flat_mask.nonzero().squeeze(-1)


def _fast_candidates(
    sel: torch.Tensor,
    x_blk: torch.Tensor,
    flat: torch.Tensor,
    temperature: float,
    remasking: str,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidates ``x0 [B, bl]`` and float64 confidences ``[B, bl]`` (-inf off the masks) from the logits ``sel``
    ``[N, V]`` of the block's masked positions ``flat`` (``[N]``, flat indices into ``[B, bl]``); noise only there."""
    batch, length = x_blk.shape
    n_masked = flat.numel()
    tokens = _noise.gumbel_max_fast(sel, temperature, generator)
    if remasking == "low_confidence":
        conf = _noise.token_confidence(sel, tokens)
    else:
        conf = _noise.random_confidence_fast(n_masked, generator, sel.device).to(torch.float64)
    x0 = x_blk.reshape(-1).index_put((flat,), tokens).view(batch, length)
    confidence = torch.full((batch * length,), -math.inf, dtype=torch.float64, device=sel.device)
    confidence = confidence.index_put((flat,), conf).view(batch, length)
    return x0, confidence


def _exact_candidates(
    logits: torch.Tensor,
    x_blk: torch.Tensor,
    blk_mask: torch.Tensor,
    full_shape: tuple[int, int, int],
    blk: slice,
    temperature: float,
    remasking: str,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """As :func:`_fast_candidates`, drawing the reference's full-shape noise (``exact`` mode)."""
    tokens = _noise.gumbel_max_exact(logits, temperature, generator, full_shape, blk)  # [B, bl]
    if remasking == "low_confidence":
        conf = _noise.token_confidence(logits, tokens)
    else:
        conf = _noise.random_confidence_exact(full_shape[0], full_shape[1], generator, logits.device)[:, blk]
        conf = conf.to(torch.float64)
    x0 = torch.where(blk_mask, tokens, x_blk)
    confidence = torch.where(blk_mask, conf, -math.inf)
    return x0, confidence


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def advance(self) -> None:
        pass


class _RichBar:
    def __init__(self, total: int):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("decoding blocks"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._total = total
        self._stack = contextlib.ExitStack()

    def __enter__(self):
        self._stack.enter_context(self._progress)
        self._task = self._progress.add_task("blocks", total=self._total)
        return self

    def __exit__(self, *exc):
        return self._stack.__exit__(*exc)

    def advance(self) -> None:
        self._progress.advance(self._task)


def _progress(enabled: bool, total: int):
    return _RichBar(total) if enabled else _NoBar()


@dataclass(frozen=True)
class LLaDASampler:
    """A configured LLaDA sampler (spec sec. 1-2); call it to generate.

    Attributes:
        gen_length: ``L`` (RL: 256). block_length: positions per block (32). steps: total steps (RL: L / 2).
        temperature: tau of the Gumbel-max sampling (0 = greedy). remasking: ``low_confidence`` | ``random``.
        cfg_scale: classifier-free guidance weight (0 = off). noise: ``fast`` | ``exact`` (see :func:`generate`).
        eos_early_exit: IGPO's early exit once every row's block is all EOS.
        threshold: Fast-dLLM's confidence-threshold parallel decoding (None = off; see :func:`generate`).
    """

    gen_length: int = 256
    block_length: int = 32
    steps: int = 128
    temperature: float = 0.0
    remasking: str = "low_confidence"
    cfg_scale: float = 0.0
    noise: str = "fast"
    eos_early_exit: bool = False
    threshold: float | None = None

    def __post_init__(self) -> None:
        check_lengths(self.gen_length, self.block_length, self.steps)
        _check_options(self.temperature, self.remasking, self.cfg_scale, self.noise)
        check_threshold(self.threshold, self.remasking)

    def check_model(self, model: DiffusionLM) -> None:
        """Raise a ConfigError if this sampler cannot run on ``model`` (entries call it before any work)."""

    def _forward(self, model: DiffusionLM) -> ForwardFactory | None:
        """The forward of each step (None: :func:`full_forward`); cached samplers override it."""
        return None

    def __call__(
        self,
        model: DiffusionLM,
        prompt_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        hint_ids: torch.Tensor | None = None,
        hint_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
        on_step: Callable[[StepInfo], None] | None = None,
    ) -> Generation:
        """:func:`generate` with this configuration."""
        return generate(
            model,
            prompt_ids,
            gen_length=self.gen_length,
            block_length=self.block_length,
            steps=self.steps,
            temperature=self.temperature,
            remasking=self.remasking,
            cfg_scale=self.cfg_scale,
            attention_mask=attention_mask,
            hint_ids=hint_ids,
            hint_mask=hint_mask,
            generator=generator,
            noise=self.noise,
            eos_early_exit=self.eos_early_exit,
            progress=progress,
            on_step=on_step,
            threshold=self.threshold,
            forward=self._forward(model),
        )


def low_confidence(
    gen_length: int = 256,
    block_length: int = 32,
    steps: int = 128,
    temperature: float = 0.0,
    cfg_scale: float = 0.0,
    noise: str = "fast",
    eos_early_exit: bool = False,
    threshold: float | None = None,
) -> LLaDASampler:
    """LLaDA semi-AR block decoding, low-confidence remasking (spec sec. 1-2).

    Each step commits the masked tokens whose untempered probability is highest. Exact (matches the reference
    token for token) unless ``threshold`` is set.

    Args:
        gen_length: ``L``; block_length: positions per block (``L % block_length == 0``);
        steps: total denoising steps (a multiple of ``L / block_length``; RL: ``L / 2``);
        temperature: tau (0 = greedy); cfg_scale: classifier-free guidance weight (0 = off);
        noise: ``fast`` | ``exact`` (the reference's random stream, token-for-token reproducible);
        eos_early_exit: IGPO's early exit once every row's current block is all EOS;
        threshold: Fast-dLLM's parallel decoding (None = off): each step commits every masked position of the
            block with confidence >= threshold (in (0, 1]), at least one per row, so the steps per block vary
            (``steps`` only validates). An APPROXIMATION of the sampler above (fewer forward passes).
    """
    return LLaDASampler(gen_length, block_length, steps, temperature, "low_confidence", cfg_scale, noise, eos_early_exit,
                        threshold)


def random(
    gen_length: int = 256,
    block_length: int = 32,
    steps: int = 128,
    temperature: float = 0.0,
    cfg_scale: float = 0.0,
    noise: str = "fast",
    eos_early_exit: bool = False,
) -> LLaDASampler:
    """LLaDA semi-AR block decoding, random remasking (spec sec. 1-2).

    Each step commits a uniformly random subset of the block's masked positions (needs a generator).

    Args:
        gen_length: ``L``; block_length: positions per block (``L % block_length == 0``);
        steps: total denoising steps (a multiple of ``L / block_length``; RL: ``L / 2``);
        temperature: tau (0 = greedy tokens); cfg_scale: classifier-free guidance weight (0 = off);
        noise: ``fast`` | ``exact`` (the reference's random stream, token-for-token reproducible);
        eos_early_exit: IGPO's early exit once every row's current block is all EOS.
    """
    return LLaDASampler(gen_length, block_length, steps, temperature, "random", cfg_scale, noise, eos_early_exit)
