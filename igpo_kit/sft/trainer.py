"""Length-Aligned SFT trainer (paper Sec. 3.2 / 4.1, Table 2; spec sec. 9): NELBO (Eq. 1), AdamW, WSD schedule.

Data parallel through accelerate (the RL loop's :func:`igpo_kit.rl.distributed.make_accelerator`): one process per
GPU (``torchrun``, ``accelerate launch`` or Slurm tasks with ``RANK``/``WORLD_SIZE``/``MASTER_*`` set), gradients
all-reduced by DDP (gloo on CPU, NCCL on GPU) or, with a DeepSpeed config, by DeepSpeed ZeRO-2; bf16 autocast on GPU
(``mixed_precision``), float32 on CPU. A single process is the same loop with a world size of 1.

Data stream: one optimizer step consumes a *global batch* of ``batch_size * grad_accum * world_size`` positions of a
stream that visits the SFT set in a fresh permutation each epoch (the permutation of epoch ``e`` is a pure function of
``(seed, e)``), so the data position is one integer. The global batch is ``grad_accum * world_size`` micro-batches of
``batch_size`` rows; rank ``r`` trains on micro-batches ``r * grad_accum .. (r + 1) * grad_accum - 1`` (a contiguous,
disjoint slice). The masking noise comes from one generator per rank, all seeded alike, that every rank advances
through the whole global batch (drawing, and discarding, the noise of the other ranks' micro-batches: see
:func:`~igpo_kit.sft.nelbo.skip_forward_process`). So micro-batch ``k`` of a step gets the same rows and the same
noise whatever the world size, and ``W`` processes with ``grad_accum = a`` train exactly as one process with
``grad_accum = W * a`` (up to the order of floating-point sums). With one process the stream, the noise and the
updates are those of the single-process trainer this one replaced, bit for bit.

Resumption is automatic: if ``run_dir/checkpoints/latest`` names a complete checkpoint (see
:mod:`igpo_kit.checkpoint`), every rank restores the weights, optimizer, scheduler, its noise generator and the data
position, and training continues; a run that is complete just (re)writes ``run_dir/model``. Running ``N`` steps in one
call or in several resumed calls gives bit-identical weights and metrics (the global RNG is never used; networks with
dropout draw from it, which this trainer does not control). Checkpoints, ``log`` calls and the final model are the
main process's (rank 0); a checkpoint holds every rank's generator state and must be resumed with the same world size.
Under DeepSpeed each checkpoint's ``model/`` also holds the ZeRO shards (``model/deepspeed``, written by every rank
through ``engine.save_checkpoint``), from which the weights and optimizer state are resumed.

Per-step records passed to ``log`` (main process only; means over all ranks): ``step`` (1-based count of optimizer
steps), ``loss`` (mean over the micro-batches of the global batch), ``lr`` (the lr used by this step), ``grad_norm``
(total norm before clipping), ``clipped`` (0/1), ``tokens_per_s`` (all ranks), ``epoch`` (fractional), ``mask_rate``,
``nll``. After a resume, steps ``<= resumed_from`` are not logged again; records of steps after the checkpoint that an
interrupted call had already logged are logged again (a metrics writer should keep the last record per step, or
truncate to ``state["metrics"]["records"]`` records on resume).
"""

from __future__ import annotations

import contextlib
import dataclasses
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
    CHECKPOINTS_DIR,
    capture_generators,
    load_file,
    load_latest,
    model_dir,
    restore_generators,
    save_checkpoint,
)
from igpo_kit.sft.data import SFTData, build_sft_data
from igpo_kit.sft.settings import SFTSettings
from igpo_kit.sft.nelbo import NORMALIZATIONS, nelbo_loss, skip_forward_process
from igpo_kit.schedules import warmup_stable_decay

if TYPE_CHECKING:  # pragma: no cover
    from igpo_kit.data.examples import Example
    from igpo_kit.models.base import DiffusionLM

__all__ = ["SFTResult", "train_sft", "make_sft_accelerator", "resolve_mixed_precision", "export_model",
           "load_weights", "epoch_permutation", "batch_indices", "MIXED_PRECISIONS"]

FINAL_MODEL_DIR = "model"
SUMMARY_FILE = "sft_summary.json"
DEEPSPEED_DIR = "deepspeed"  # <checkpoint>/model/deepspeed: the ZeRO shards (engine.save_checkpoint, tag "ds")
MIXED_PRECISIONS = ("auto", "no", "bf16")
# settings that must match between a checkpoint and the call resuming it (they define the data stream / noise, the
# per-rank generator states and the checkpoint format); a key missing from an older checkpoint reads as its default
_RESUME_KEYS = ("rows", "batch_size", "grad_accum", "seed", "max_length", "world_size", "deepspeed")
_RESUME_DEFAULTS = {"world_size": 1, "deepspeed": False}


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
        network.load_state_dict(load_file(p / "weights.pt"))
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


# --- accelerator ----------------------------------------------------------------------------------------------


def resolve_mixed_precision(mixed_precision: str) -> str:
    """``"auto"`` -> ``"bf16"`` where CUDA is available, else ``"no"``; ``"no"`` and ``"bf16"`` as given."""
    from igpo_kit.errors import ConfigError

    if mixed_precision not in MIXED_PRECISIONS:
        raise ConfigError(f"sft mixed_precision must be one of {MIXED_PRECISIONS}, got {mixed_precision!r}")
    if mixed_precision == "auto":
        return "bf16" if torch.cuda.is_available() else "no"
    return mixed_precision


def _deepspeed_with_bf16(config: str | os.PathLike | dict, bf16: bool) -> dict:
    """The DeepSpeed config (a JSON file or a dict) with ``bf16.enabled = bf16`` where it says ``"auto"``."""
    from igpo_kit.errors import ConfigError

    if isinstance(config, dict):
        cfg = json.loads(json.dumps(config))
    else:
        from igpo_kit.assets import resolve_data

        path = Path(resolve_data(str(config)))
        if not path.is_file():
            raise ConfigError(f"deepspeed_config: file not found: {config}")
        try:
            cfg = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"deepspeed_config: {path} is not valid JSON ({exc})") from None
    section = cfg.get("bf16")
    if isinstance(section, dict) and section.get("enabled", "auto") == "auto":
        section["enabled"] = bool(bf16)
    return cfg


@contextlib.contextmanager
def _env_var(name: str, value: str):
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def make_sft_accelerator(
    deepspeed_config: str | os.PathLike | dict | None = None,
    mixed_precision: str = "auto",
    batch_size: int = 4,
    max_grad_norm: float = 1.0,
):
    """The SFT's ``Accelerator``, from the RL loop's :func:`igpo_kit.rl.distributed.make_accelerator`.

    Without ``deepspeed_config``: DDP (or one plain process) with accelerate's native bf16 autocast when
    ``mixed_precision`` resolves to ``"bf16"`` (the trainer then keeps the trainable weights in float32: fp32
    master weights and optimizer states, bf16 compute; see :mod:`igpo_kit.models.precision`). With one
    (``recipes/deepspeed/zero2.json``): DeepSpeed ZeRO 0-2, micro batch ``batch_size`` per backward, DeepSpeed's
    clipping at ``max_grad_norm``; ``mixed_precision`` fills the config's ``bf16.enabled: "auto"`` (``"auto"``
    leaves it to the config: bf16 on GPU). ZeRO-3 is refused (the SFT saves full weights from rank 0).
    """
    from igpo_kit.errors import ConfigError
    from igpo_kit.rl.distributed import make_accelerator

    mp = resolve_mixed_precision(mixed_precision)
    clip = float(max_grad_norm) if max_grad_norm and max_grad_norm > 0 else 0.0
    if deepspeed_config is not None:
        config = deepspeed_config if mixed_precision == "auto" else _deepspeed_with_bf16(deepspeed_config, mp == "bf16")
        acc = make_accelerator(config, micro_batch_size=batch_size, max_grad_norm=clip)
        if acc.state.deepspeed_plugin.zero_stage == 3:
            raise ConfigError("sft: DeepSpeed ZeRO-3 is not supported (checkpoints and the final model are written "
                              "from rank 0's full parameters); use ZeRO-2, e.g. recipes/deepspeed/zero2.json")
        return acc
    # make_accelerator takes no precision for the DDP path: accelerate reads it from this variable (what
    # `accelerate launch --mixed_precision` sets) when its state is first built
    with _env_var("ACCELERATE_MIXED_PRECISION", mp):
        acc = make_accelerator()
    if acc.mixed_precision != mp:
        raise ConfigError(f"sft: mixed_precision={mp!r}, but accelerate in this process was already set up with "
                          f"{acc.mixed_precision!r} (one Accelerator configuration per process)")
    return acc


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


def _with_network(model: "DiffusionLM", network: torch.nn.Module) -> "DiffusionLM":
    """``model`` with another network module (the DDP / DeepSpeed wrapper, or the unwrapped module)."""
    if network is model.network:
        return model
    return dataclasses.replace(model, network=network)


def train_sft(
    model: "DiffusionLM",
    examples: Sequence["Example"],
    prompt: Any,
    *,
    run_dir: str | os.PathLike,
    settings: SFTSettings = SFTSettings(),
    log: Callable[[dict], None] | None = None,
    stop_at_step: int | None = None,
    accelerator: Any = None,
    progress: bool = True,
) -> SFTResult:
    """Length-Aligned SFT of ``model`` on ``examples`` (NELBO Eq. 1), resuming from ``run_dir`` if possible.

    Every process of a data-parallel job calls this with the same arguments (see the module docstring).

    Args:
        model: the dLLM to fine-tune (trained in place, full fine-tune of all trainable parameters).
        examples: SFT examples with traces (see :func:`igpo_kit.sft.data.build_sft_data`).
        prompt: prompt component (``messages(example)``, ``prefill``).
        run_dir: run directory: ``checkpoints/`` and, when complete, the final model ``model/``.
        settings: the run's :class:`~igpo_kit.sft.settings.SFTSettings` (batch, schedule, optimizer, checkpoints,
            precision, DeepSpeed).
        log: called with one dict per optimizer step, on the main process only.
        stop_at_step: stop (checkpoint, return ``completed=False``) once this many steps are done, without changing
            the schedule — a planned interruption; a later call resumes.
        accelerator: an ``accelerate.Accelerator`` to use (default: :func:`make_sft_accelerator` from the settings'
            ``deepspeed_config``, ``mixed_precision``, ``batch_size`` and ``max_grad_norm``).
        progress: a progress bar (terminal) or periodic progress lines (logs) on stderr, main process only.
    Returns:
        :class:`SFTResult` (on every rank).
    """
    from igpo_kit.errors import ConfigError
    from igpo_kit.rl.distributed import is_deepspeed

    if settings.batch_size < 1 or settings.grad_accum < 1:
        raise ConfigError(f"batch_size and grad_accum must be >= 1 (got {settings.batch_size}, {settings.grad_accum})")
    if settings.normalization not in NORMALIZATIONS:
        raise ConfigError(f"sft normalization must be one of {NORMALIZATIONS}, got {settings.normalization!r}")
    if settings.max_steps is not None and settings.max_steps < 1:
        raise ConfigError(f"max_steps must be >= 1 or None, got {settings.max_steps}")
    if settings.max_steps is None and not settings.epochs > 0:
        raise ConfigError(f"epochs must be > 0, got {settings.epochs}")
    run_dir = Path(run_dir)

    data: SFTData = build_sft_data(model, examples, prompt, settings.max_length, end_of_turn=settings.end_of_turn)
    n = len(data)
    if n == 0:
        raise ConfigError(
            f"no SFT example fits the budget max_length={settings.max_length} "
            f"(dropped: {data.dropped}; sequence lengths: {data.stats['sequence'].as_dict()})"
        )
    acc = accelerator if accelerator is not None else make_sft_accelerator(
        settings.deepspeed_config, settings.mixed_precision, settings.batch_size, settings.max_grad_norm)
    rank, world, main = acc.process_index, acc.num_processes, acc.is_main_process
    deepspeed = is_deepspeed(acc)
    log = log if (log is not None and main) else (lambda record: None)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)

    micro_batches = settings.grad_accum * world  # of the global batch; rank r's are r * grad_accum + (0..)
    per_step = settings.batch_size * micro_batches
    total_steps = (int(settings.max_steps) if settings.max_steps is not None
                   else max(1, math.ceil(settings.epochs * n / per_step)))
    config = {"rows": n, "batch_size": settings.batch_size, "grad_accum": settings.grad_accum, "seed": settings.seed,
              "max_length": settings.max_length, "total_steps": total_steps, "lr": settings.lr,
              "normalization": settings.normalization, "world_size": world,
              "deepspeed": deepspeed, "mixed_precision": str(acc.mixed_precision)}

    network = model.network
    if settings.gradient_checkpointing:
        from igpo_kit.models.checkpointing import enable_gradient_checkpointing

        enable_gradient_checkpointing(network, model.name)
    was_training = network.training
    params = [p for p in network.parameters() if p.requires_grad]
    if not deepspeed and acc.mixed_precision == "bf16":  # bf16 autocast, fp32 master weights (DeepSpeed: its own)
        from igpo_kit.models.precision import fp32_master_weights

        fp32_master_weights(network)
    optimizer = torch.optim.AdamW(_param_groups(network, settings.weight_decay), lr=settings.lr, betas=settings.betas)
    # stepped here once per optimizer step, not handed to accelerate (whose wrapper would step it once per process)
    scheduler = warmup_stable_decay(optimizer, total_steps, warmup_steps=settings.warmup_steps,
                                    min_lr=settings.min_lr, decay_fraction=settings.decay_fraction,
                                    decay_type=settings.decay_type)
    wrapped, prepared_optimizer = acc.prepare(network, optimizer)
    device = acc.device
    noise_gen = torch.Generator(device=device).manual_seed(int(settings.seed))
    step, consumed, resumed_from = 0, 0, None

    ckpt = load_latest(run_dir)
    if ckpt is not None:
        path, state = ckpt
        saved = state.get("config", {})
        bad = [k for k in _RESUME_KEYS if saved.get(k, _RESUME_DEFAULTS.get(k, config[k])) != config[k]]
        if bad:
            raise ConfigError(
                f"cannot resume {run_dir}: the checkpoint was written with "
                + ", ".join(f"{k}={saved.get(k, _RESUME_DEFAULTS.get(k))!r}" for k in bad)
                + " but this call has "
                + ", ".join(f"{k}={config[k]!r}" for k in bad)
                + " (use a new run directory, or resume with the settings and number of processes it was written with)"
            )
        if int(state["step"]) > total_steps:
            raise ConfigError(f"cannot resume {run_dir}: checkpoint step {state['step']} > total_steps {total_steps}")
        if deepspeed:
            wrapped.load_checkpoint(str(model_dir(path) / DEEPSPEED_DIR), tag="ds", load_optimizer_states=True,
                                    load_lr_scheduler_states=False)
        else:
            load_weights(acc.unwrap_model(wrapped), model_dir(path))
            optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        saved_gens = state["generators"]
        if isinstance(saved_gens, (list, tuple)):  # one state per rank
            if len(saved_gens) != world:
                raise ConfigError(f"cannot resume {run_dir}: {path.name} holds {len(saved_gens)} rank(s)' generator "
                                  f"states, this job has {world} process(es)")
            saved_gens = saved_gens[rank]
        restore_generators({"noise": noise_gen}, saved_gens)
        step = int(state["step"])
        consumed = int(state["data"]["consumed"])
        resumed_from = step

    lm = _with_network(model, wrapped)  # forward passes go through DDP / the DeepSpeed engine (hooks, autocast)
    export_lm = _with_network(model, acc.unwrap_model(wrapped))
    staging = run_dir / CHECKPOINTS_DIR / "deepspeed_staging"

    def checkpoint() -> None:
        """Collective: gather the generator states (and, under DeepSpeed, every rank writes its ZeRO shards); the
        main process writes the checkpoint atomically, ``latest`` last."""
        from accelerate.utils import gather_object

        gens = capture_generators({"noise": noise_gen})
        all_gens = gather_object([gens]) if world > 1 else [gens]
        shards = staging / f"step_{step}"
        if deepspeed:
            if main and shards.exists():
                shutil.rmtree(shards)
            acc.wait_for_everyone()
            wrapped.save_checkpoint(str(shards), tag="ds")
            acc.wait_for_everyone()
        if main:
            state = {
                "step": step,
                "total_steps": total_steps,
                "optimizer": None if deepspeed else optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "generators": list(all_gens),
                "data": {"consumed": consumed, "rows": n},
                "metrics": {"records": step},
                "config": config,
                "world_size": world,
            }

            def write_model(p: Path) -> None:
                export_model(export_lm, p)
                if deepspeed:
                    os.replace(shards, p / DEEPSPEED_DIR)
                    with contextlib.suppress(OSError):
                        staging.rmdir()

            save_checkpoint(run_dir, step, state, write_model, keep=settings.keep_checkpoints)
        acc.wait_for_everyone()

    def out_of_time() -> bool:
        late = time.perf_counter() - t_start > settings.time_limit_s
        if world > 1:  # every rank stops at the same step
            flag = torch.tensor([1.0 if late else 0.0], device=device)
            late = bool(acc.reduce(flag, reduction="sum").item() > 0)
        return late

    def accumulating(last: bool):
        """Gradient sync only at the last micro-batch of this rank (DDP: ``no_sync`` before; DeepSpeed: the engine's
        accumulation boundary, as accelerate's DeepSpeed wrapper sets it)."""
        if deepspeed:
            wrapped.set_gradient_accumulation_boundary(is_boundary=last)
            return contextlib.nullcontext()
        if world > 1 and not last:
            return acc.no_sync(wrapped)
        return contextlib.nullcontext()

    history: list[dict[str, Any]] = []
    last_loss = None
    saved_step = resumed_from
    perm_cache: dict[int, torch.Tensor] = {}
    seq_len = int(data.input_ids.shape[1])
    mine = range(rank * settings.grad_accum, (rank + 1) * settings.grad_accum)
    t_start = time.perf_counter()
    clip = settings.max_grad_norm if settings.max_grad_norm and settings.max_grad_norm > 0 else float("inf")
    network.train()
    from igpo_kit.progress import Progress

    progress_ = Progress("sft steps", total_steps, done=step, enabled=main and progress).start()
    ok = False
    try:
        while step < total_steps:
            if stop_at_step is not None and step >= stop_at_step:
                break
            if settings.time_limit_s is not None and out_of_time():
                break
            t0 = time.perf_counter()
            if not deepspeed:
                optimizer.zero_grad(set_to_none=True)
            loss_sum, nll_sum, mask_sum, tokens = 0.0, 0.0, 0.0, 0
            for k in range(micro_batches):
                if k not in mine:  # another rank's micro-batch: advance the noise generator past it
                    skip_forward_process(settings.batch_size, seq_len, noise_gen)
                    continue
                idx = batch_indices(settings.seed, consumed + k * settings.batch_size, settings.batch_size, n,
                                    perm_cache)
                ids = data.input_ids[idx].to(device)
                with accumulating(last=k == mine[-1]):
                    loss, stats = nelbo_loss(
                        lm, ids, data.prompt_lengths[idx].to(device), data.answer_mask[idx].to(device),
                        noise_gen, eps=settings.eps, normalization=settings.normalization,
                    )
                    if deepspeed:
                        wrapped.backward(loss / settings.grad_accum)
                    else:
                        acc.backward(loss / settings.grad_accum)
                loss_sum += float(loss.detach())
                nll_sum += stats["nll"]
                mask_sum += stats["mask_rate"]
                tokens += ids.numel()
            consumed += per_step
            lr_used = float(scheduler.get_last_lr()[0])
            if deepspeed:
                wrapped.step()  # DeepSpeed clips at gradient_clipping = max_grad_norm, steps and zeroes the grads
                norm = wrapped.get_global_grad_norm()
                grad_norm = float("nan") if norm is None else float(norm)
            else:
                grad_norm = float(acc.clip_grad_norm_(params, clip))
                prepared_optimizer.step()
            scheduler.step()
            step += 1
            if world > 1:  # means over the whole global batch
                sums = torch.tensor([loss_sum, nll_sum, mask_sum, float(tokens)], dtype=torch.float64, device=device)
                loss_sum, nll_sum, mask_sum, tokens = acc.reduce(sums, reduction="sum").tolist()
            dt = max(time.perf_counter() - t0, 1e-9)
            last_loss = loss_sum / micro_batches
            record = {
                "step": step,
                "loss": last_loss,
                "lr": lr_used,
                "grad_norm": grad_norm,
                "clipped": int(grad_norm > clip),
                "tokens_per_s": tokens / dt,
                "epoch": consumed / n,
                "mask_rate": mask_sum / micro_batches,
                "nll": nll_sum / micro_batches,
            }
            history.append(record)
            log(dict(record))
            progress_.update(step, status=f"loss {last_loss:.3f}")
            if settings.checkpoint_every and step % settings.checkpoint_every == 0 and step < total_steps:
                checkpoint()
                saved_step = step
        if saved_step != step:
            checkpoint()
        ok = True
    finally:
        progress_.close(ok)
        network.train(was_training)

    completed = step >= total_steps
    final_dir = None
    summary = {"step": step, "total_steps": total_steps, "data": data.summary(), "config": config}
    if completed:
        final_dir = run_dir / FINAL_MODEL_DIR
        if main and (not (final_dir / SUMMARY_FILE).is_file() or saved_step != resumed_from or resumed_from is None):
            tmp = run_dir / (FINAL_MODEL_DIR + ".tmp")
            if tmp.exists():
                shutil.rmtree(tmp)
            export_model(export_lm, tmp)
            (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
            _replace_dir(tmp, final_dir)
        acc.wait_for_everyone()
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
