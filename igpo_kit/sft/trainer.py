"""Length-Aligned SFT trainer (paper Sec. 3.2 / 4.1, Table 2; spec sec. 9): NELBO (Eq. 1), AdamW, WSD schedule.

Plain PyTorch, single process, on the model's device (float32 on CPU). One optimizer step consumes
``batch_size * grad_accum`` examples from a stream that visits the SFT set in a fresh permutation each epoch (the
permutation of epoch ``e`` is a pure function of ``(seed, e)``), so the data position is one integer.

Resumption is automatic: if ``run_dir/checkpoints/latest`` names a complete checkpoint (see
:mod:`igpo_kit.checkpoint`), the weights, optimizer, scheduler, noise generator and data position are restored and
training continues; a run that is complete just (re)writes ``run_dir/model``. Running ``N`` steps in one call or in
several resumed calls gives bit-identical weights and metrics (the global RNG is never used; networks with dropout
draw from it, which this trainer does not control).

Per-step records passed to ``log``: ``step`` (1-based count of optimizer steps), ``loss`` (mean over micro-batches),
``lr`` (the lr used by this step), ``grad_norm`` (total norm before clipping), ``clipped`` (0/1), ``tokens_per_s``,
``epoch`` (fractional), ``mask_rate``, ``nll``. After a resume, steps ``<= resumed_from`` are not logged again; records
of steps after the checkpoint that an interrupted call had already logged are logged again (a metrics writer should
keep the last record per step, or truncate to ``state["metrics"]["records"]`` records on resume).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from igpo_kit.checkpoint import (
    capture_generators,
    load_latest,
    model_dir,
    restore_generators,
    save_checkpoint,
)
from igpo_kit.sft.data import SFTData, build_sft_data
from igpo_kit.sft.nelbo import NORMALIZATIONS, nelbo_loss
from igpo_kit.sft.schedule import warmup_stable_decay

if TYPE_CHECKING:  # pragma: no cover
    from igpo_kit.data.examples import Example
    from igpo_kit.models.base import DiffusionLM

__all__ = ["SFTResult", "train_sft", "export_model", "load_weights", "epoch_permutation", "batch_indices"]

FINAL_MODEL_DIR = "model"
SUMMARY_FILE = "sft_summary.json"
# settings that must match between a checkpoint and the call resuming it (they define the data stream / noise)
_RESUME_KEYS = ("rows", "batch_size", "grad_accum", "seed", "max_length")


@dataclass
class SFTResult:
    """Outcome of one :func:`train_sft` call.

    Attributes:
        run_dir: the run directory.
        model_dir: ``run_dir/model`` (a ``save_pretrained`` directory) when training is complete, else None.
        step: optimizer steps completed in total (across resumed calls).
        total_steps: planned optimizer steps.
        completed: ``step == total_steps``.
        resumed_from: the checkpoint step this call resumed from (None for a fresh start).
        last_loss: loss of the last step run by this call (None if it ran none).
        data: the SFT set summary (rows, drops, length statistics).
        history: the records this call passed to ``log``.
    """

    run_dir: Path
    model_dir: Path | None
    step: int
    total_steps: int
    completed: bool
    resumed_from: int | None
    last_loss: float | None
    data: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


# --- model IO ---------------------------------------------------------------------------------------------------


def _is_tiny(model: "DiffusionLM") -> bool:
    return model.name == "tiny" or model.name.startswith("tiny:")


def export_model(model: "DiffusionLM", path: str | os.PathLike) -> Path:
    """Write ``model`` as a ``save_pretrained`` directory that the model loaders read back.

    Tiny models go through :func:`igpo_kit.models.tiny.save` (loadable with ``model.tiny(path=...)``); other models
    through ``network.save_pretrained`` + ``tokenizer.save_pretrained``; a plain ``nn.Module`` without
    ``save_pretrained`` gets ``weights.pt`` (its state dict).
    """
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    if _is_tiny(model):
        from igpo_kit.models.tiny import save

        return save(model, p)
    net = model.network
    if hasattr(net, "save_pretrained"):
        net.save_pretrained(p)
    else:
        torch.save(net.state_dict(), p / "weights.pt")
    if model.tokenizer is not None and hasattr(model.tokenizer, "save_pretrained"):
        model.tokenizer.save_pretrained(p)
    return p


def _read_safetensors_dir(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no weights (*.safetensors or weights.pt) in {path}")
    sd: dict[str, torch.Tensor] = {}
    for f in files:
        sd.update(load_file(str(f)))
    return sd


def load_weights(network: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load weights written by :func:`export_model` into an existing ``network`` (in place, same tensors).

    Keys absent from the files are accepted only for parameters tied to a loaded one (e.g. a tied LM head).
    """
    p = Path(path)
    if (p / "weights.pt").is_file():
        network.load_state_dict(torch.load(p / "weights.pt", map_location="cpu", weights_only=True))
        return
    sd = _read_safetensors_dir(p)
    result = network.load_state_dict(sd, strict=False)
    if result.unexpected_keys:
        raise RuntimeError(f"{p}: weights do not match the network (unexpected keys {result.unexpected_keys[:5]})")
    if result.missing_keys:
        own = network.state_dict(keep_vars=True)
        loaded_ptrs = {own[k].data_ptr() for k in sd if k in own}
        untied = [k for k in result.missing_keys if own[k].data_ptr() not in loaded_ptrs]
        if untied:
            raise RuntimeError(f"{p}: weights missing for {untied[:5]}")


def _replace_dir(src: Path, dst: Path) -> None:
    """Move the complete directory ``src`` to ``dst``, replacing an existing ``dst``."""
    if dst.exists():
        old = dst.with_name(dst.name + ".old.tmp")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


# --- data order -------------------------------------------------------------------------------------------------


def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The order of the ``n`` SFT rows in epoch ``epoch`` (a private generator seeded from ``(seed, epoch)``)."""
    g = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch)) % (2**63))
    return torch.randperm(n, generator=g)


def batch_indices(seed: int, start: int, size: int, n: int, cache: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
    """Row indices of stream positions ``start .. start + size - 1`` (position ``p`` = row ``perm_{p // n}[p % n]``)."""
    cache = {} if cache is None else cache
    out = []
    for pos in range(start, start + size):
        epoch, i = divmod(pos, n)
        if epoch not in cache:
            cache.clear()
            cache[epoch] = epoch_permutation(seed, epoch, n)
        out.append(int(cache[epoch][i]))
    return torch.tensor(out, dtype=torch.long)


# --- trainer ----------------------------------------------------------------------------------------------------


def _param_groups(network: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices, none on 1-D parameters (norm scales, biases), as HF Trainer."""
    decay, no_decay = [], []
    for _name, p in network.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def train_sft(
    model: "DiffusionLM",
    examples: Sequence["Example"],
    prompt: Any,
    *,
    run_dir: str | os.PathLike,
    max_length: int = 1024,
    batch_size: int = 4,
    grad_accum: int = 1,
    epochs: float = 1.0,
    max_steps: int | None = None,
    lr: float = 5e-6,
    weight_decay: float = 0.1,
    warmup_steps: int = 200,
    min_lr: float = 1e-6,
    decay_fraction: float = 0.1,
    max_grad_norm: float = 1.0,
    seed: int = 0,
    checkpoint_every: int = 0,
    log: Callable[[dict], None] | None = None,
    normalization: str = "answer_tokens",
    eps: float = 1e-3,
    decay_type: str = "linear",
    betas: tuple[float, float] = (0.9, 0.999),
    end_of_turn: bool = False,
    keep_checkpoints: int = 2,
    stop_at_step: int | None = None,
    time_limit_s: float | None = None,
) -> SFTResult:
    """Length-Aligned SFT of ``model`` on ``examples`` (NELBO Eq. 1), resuming from ``run_dir`` if possible.

    Args:
        model: the dLLM to fine-tune (trained in place, full fine-tune of all trainable parameters).
        examples: SFT examples with traces (see :func:`igpo_kit.sft.data.build_sft_data`).
        prompt: prompt component (``messages(example)``, ``prefill``).
        run_dir: run directory: ``checkpoints/`` and, when complete, the final model ``model/``.
        max_length: sequence budget in tokens (prompt + answer + EOS padding); longer examples are dropped.
        batch_size: rows per micro-batch.
        grad_accum: micro-batches per optimizer step.
        epochs: passes over the SFT set (fractional allowed); ignored when ``max_steps`` is set.
        max_steps: planned optimizer steps (the schedule length), overriding ``epochs``.
        lr: peak learning rate (Table 2: 5e-6).
        weight_decay: AdamW decoupled weight decay on weight matrices (d1: 0.1).
        warmup_steps, min_lr, decay_fraction, decay_type: the WSD schedule (Table 2: 200, 1e-6, 0.1).
        max_grad_norm: gradient clipping threshold (<= 0 disables clipping; the norm is still logged).
        seed: seeds the data order and the masking generator.
        checkpoint_every: save a checkpoint every this many steps (0: only at the end of the call).
        log: called with one dict per optimizer step.
        normalization: NELBO normalisation (``answer_tokens`` | ``batch_tokens`` | ``none``, see nelbo.py).
        eps: ``t' = (1 - eps) t + eps``.
        betas: AdamW betas.
        end_of_turn: append ``<|eot_id|>`` after the answer (see ``build_sft_data``).
        keep_checkpoints: checkpoints kept on disk.
        stop_at_step: stop (checkpoint, return ``completed=False``) once this many steps are done, without changing
            the schedule — a planned interruption; a later call resumes.
        time_limit_s: likewise stop after this many seconds of training in this call.
    Returns:
        :class:`SFTResult`.
    """
    from igpo_kit.errors import ConfigError

    if batch_size < 1 or grad_accum < 1:
        raise ConfigError(f"batch_size and grad_accum must be >= 1 (got {batch_size}, {grad_accum})")
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"sft normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if max_steps is not None and max_steps < 1:
        raise ConfigError(f"max_steps must be >= 1 or None, got {max_steps}")
    if max_steps is None and not epochs > 0:
        raise ConfigError(f"epochs must be > 0, got {epochs}")
    log = log or (lambda record: None)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    data: SFTData = build_sft_data(model, examples, prompt, max_length, end_of_turn=end_of_turn)
    n = len(data)
    if n == 0:
        raise ConfigError(
            f"no SFT example fits the budget max_length={max_length} "
            f"(dropped: {data.dropped}; sequence lengths: {data.stats['sequence'].as_dict()})"
        )
    per_step = batch_size * grad_accum
    total_steps = int(max_steps) if max_steps is not None else max(1, math.ceil(epochs * n / per_step))
    config = {"rows": n, "batch_size": batch_size, "grad_accum": grad_accum, "seed": seed, "max_length": max_length,
              "total_steps": total_steps, "lr": lr, "normalization": normalization}

    network = model.network
    device = model.device
    was_training = network.training
    params = [p for p in network.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(_param_groups(network, weight_decay), lr=lr, betas=betas)
    scheduler = warmup_stable_decay(optimizer, total_steps, warmup_steps=warmup_steps, min_lr=min_lr,
                                    decay_fraction=decay_fraction, decay_type=decay_type)
    noise_gen = torch.Generator(device=device).manual_seed(int(seed))
    step, consumed, resumed_from = 0, 0, None

    ckpt = load_latest(run_dir)
    if ckpt is not None:
        path, state = ckpt
        saved = state.get("config", {})
        bad = [k for k in _RESUME_KEYS if k in saved and saved[k] != config[k]]
        if bad:
            raise ConfigError(
                f"cannot resume {run_dir}: the checkpoint was written with "
                + ", ".join(f"{k}={saved[k]!r}" for k in bad)
                + " but this call has "
                + ", ".join(f"{k}={config[k]!r}" for k in bad)
                + " (use a new run directory)"
            )
        load_weights(network, model_dir(path))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_generators({"noise": noise_gen}, state["generators"])
        step = int(state["step"])
        consumed = int(state["data"]["consumed"])
        resumed_from = step
        if step > total_steps:
            raise ConfigError(f"cannot resume {run_dir}: checkpoint step {step} > total_steps {total_steps}")

    def checkpoint() -> None:
        state = {
            "step": step,
            "total_steps": total_steps,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "generators": capture_generators({"noise": noise_gen}),
            "data": {"consumed": consumed, "rows": n},
            "metrics": {"records": step},
            "config": config,
        }
        save_checkpoint(run_dir, step, state, lambda p: export_model(model, p), keep=keep_checkpoints)

    history: list[dict[str, Any]] = []
    last_loss = None
    saved_step = resumed_from
    perm_cache: dict[int, torch.Tensor] = {}
    t_start = time.perf_counter()
    clip = max_grad_norm if max_grad_norm and max_grad_norm > 0 else float("inf")
    network.train()
    try:
        while step < total_steps:
            if stop_at_step is not None and step >= stop_at_step:
                break
            if time_limit_s is not None and time.perf_counter() - t_start > time_limit_s:
                break
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss_sum, nll_sum, mask_sum, tokens = 0.0, 0.0, 0.0, 0
            for _ in range(grad_accum):
                idx = batch_indices(seed, consumed, batch_size, n, perm_cache)
                consumed += batch_size
                ids = data.input_ids[idx].to(device)
                loss, stats = nelbo_loss(
                    model, ids, data.prompt_lengths[idx].to(device), data.answer_mask[idx].to(device),
                    noise_gen, eps=eps, normalization=normalization,
                )
                (loss / grad_accum).backward()
                loss_sum += float(loss.detach())
                nll_sum += stats["nll"]
                mask_sum += stats["mask_rate"]
                tokens += ids.numel()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
            lr_used = float(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
            step += 1
            dt = max(time.perf_counter() - t0, 1e-9)
            last_loss = loss_sum / grad_accum
            record = {
                "step": step,
                "loss": last_loss,
                "lr": lr_used,
                "grad_norm": grad_norm,
                "clipped": int(grad_norm > clip),
                "tokens_per_s": tokens / dt,
                "epoch": consumed / n,
                "mask_rate": mask_sum / grad_accum,
                "nll": nll_sum / grad_accum,
            }
            history.append(record)
            log(dict(record))
            if checkpoint_every and step % checkpoint_every == 0 and step < total_steps:
                checkpoint()
                saved_step = step
        if saved_step != step:
            checkpoint()
    finally:
        network.train(was_training)

    completed = step >= total_steps
    final_dir = None
    summary = {"step": step, "total_steps": total_steps, "data": data.summary(), "config": config}
    if completed:
        final_dir = run_dir / FINAL_MODEL_DIR
        if not (final_dir / SUMMARY_FILE).is_file() or saved_step != resumed_from or resumed_from is None:
            tmp = run_dir / (FINAL_MODEL_DIR + ".tmp")
            if tmp.exists():
                shutil.rmtree(tmp)
            export_model(model, tmp)
            (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
            _replace_dir(tmp, final_dir)
    return SFTResult(
        run_dir=run_dir,
        model_dir=final_dir,
        step=step,
        total_steps=total_steps,
        completed=completed,
        resumed_from=resumed_from,
        last_loss=last_loss,
        data=data.summary(),
        history=history,
    )
