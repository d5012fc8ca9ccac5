"""The accelerator of the RL loop: plain data parallel (DDP; gloo on CPU, NCCL on GPU) or DeepSpeed ZeRO through
accelerate's ``DeepSpeedPlugin``.

* Without a DeepSpeed config, :func:`make_accelerator` returns ``Accelerator(cpu=not cuda)``: one process, or one
  per rank under ``torchrun`` / ``accelerate launch --multi_gpu`` / Slurm (2 CPU processes work, gloo).
* With one (``recipes/deepspeed/zero2.json``, the paper's ZeRO-2), its ``"auto"`` values are resolved here, from
  the loop's own settings, before accelerate sees them (accelerate would otherwise fill ``gradient_clipping`` with
  1.0 and want a dataloader for the batch size):

  ====================================  ==========================================================================
  ``train_micro_batch_size_per_gpu``    rows per backward = ``micro_batch_size`` or ``prompts_per_step * G``
  ``gradient_accumulation_steps``       1 (the loop marks the accumulation boundary of its micro-batches itself)
  ``train_batch_size``                  micro batch x accumulation x ``$WORLD_SIZE``
  ``gradient_clipping``                 ``max_grad_norm`` (DeepSpeed clips inside ``engine.step``)
  ``bf16.enabled``                      True on GPU, False on CPU (float32)
  ====================================  ==========================================================================

Measured on this project's CPU machines (``../shared/design/environment-facts.md`` sec. 1.4-1.5): DeepSpeed ZeRO-2
runs on CPU in ONE process through accelerate (when ``RANK``/``WORLD_SIZE``/``MASTER_*`` are set; this module sets
them for a launcher-less single process), but accelerate + DeepSpeed with 2 CPU processes fails inside accelerate
(it finds no CPU backend for DeepSpeed and miscounts the processes), so that combination is refused with a clear
error; multi-process CPU runs use DDP. On GPUs, launch one process per GPU as usual.
"""

from __future__ import annotations

import copy
import json
import os
import socket
from pathlib import Path
from typing import Any

import torch

__all__ = ["resolve_deepspeed_config", "make_accelerator", "is_deepspeed", "quiet_deepspeed_on_cpu"]


def quiet_deepspeed_on_cpu() -> None:
    """Without CUDA, tell DeepSpeed its accelerator is the CPU (``DS_ACCELERATOR=cpu``) before anything asks it, so
    it does not warn "Setting accelerator to CPU. If you have GPU ..." on every CPU run. A value the user set is
    kept; with CUDA nothing changes (DeepSpeed detects it)."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _load(config: str | os.PathLike | dict) -> tuple[dict, str]:
    from igpo_kit.errors import ConfigError

    if isinstance(config, dict):
        return copy.deepcopy(config), "<dict>"
    from igpo_kit.assets import resolve_data

    path = Path(resolve_data(str(config)))
    if not path.is_file():
        raise ConfigError(f"deepspeed_config: file not found: {config}")
    try:
        return json.loads(path.read_text()), str(path)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"deepspeed_config: {path} is not valid JSON ({exc})") from None


def resolve_deepspeed_config(
    config: str | os.PathLike | dict,
    micro_batch_size: int,
    max_grad_norm: float,
    world_size: int | None = None,
    bf16: bool | None = None,
) -> dict:
    """A DeepSpeed config dict with every ``"auto"`` value the loop owns resolved (see the module docstring).

    Args:
        config: a JSON file (``recipes/...`` paths resolve inside an installed wheel too) or a dict.
        micro_batch_size: rows per backward pass on each process.
        max_grad_norm: the clipping norm.
        world_size: number of processes (default ``$WORLD_SIZE`` or 1).
        bf16: bf16 mixed precision (default: CUDA available).
    Returns:
        the resolved config (a new dict). Raises ``ConfigError`` for a ZeRO stage other than 0-3, a gradient
        accumulation other than 1/"auto", or an ``"auto"`` left in a key this function does not own.
    """
    from igpo_kit.errors import ConfigError

    cfg, where = _load(config)
    world = int(world_size if world_size is not None else os.environ.get("WORLD_SIZE", "1"))
    bf16 = torch.cuda.is_available() if bf16 is None else bool(bf16)
    stage = cfg.get("zero_optimization", {}).get("stage", 0)
    if stage not in (0, 1, 2, 3):
        raise ConfigError(f"deepspeed_config {where}: zero_optimization.stage must be 0-3, got {stage!r}")
    gas = cfg.get("gradient_accumulation_steps", "auto")
    if gas not in ("auto", 1):
        raise ConfigError(f"deepspeed_config {where}: gradient_accumulation_steps must be 1 or \"auto\" (the loops "
                          f"mark accumulation boundaries themselves: set micro_batch_size / grad_accum), got {gas!r}")
    cfg["gradient_accumulation_steps"] = 1
    if cfg.get("train_micro_batch_size_per_gpu", "auto") == "auto":
        cfg["train_micro_batch_size_per_gpu"] = int(micro_batch_size)
    if cfg.get("train_batch_size", "auto") == "auto":
        cfg["train_batch_size"] = int(cfg["train_micro_batch_size_per_gpu"]) * world
    if cfg.get("gradient_clipping", "auto") == "auto":
        cfg["gradient_clipping"] = float(max_grad_norm)
    for key in ("bf16", "fp16"):
        if isinstance(cfg.get(key), dict) and cfg[key].get("enabled") == "auto":
            cfg[key]["enabled"] = bf16 if key == "bf16" else False
    cfg.setdefault("zero_allow_untested_optimizer", True)  # the loop's torch AdamW (no fused-Adam JIT build)
    left = [k for k, v in _flatten(cfg).items() if v == "auto"]
    if left:
        raise ConfigError(f"deepspeed_config {where}: cannot resolve \"auto\" for {', '.join(left)}; set numbers")
    return cfg


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def make_accelerator(
    deepspeed_config: str | os.PathLike | dict | None = None,
    micro_batch_size: int = 8,
    max_grad_norm: float = 1.0,
    mixed_precision: str | None = None,
):
    """The loop's ``Accelerator``: DDP / single process without ``deepspeed_config``, else DeepSpeed (see module).

    ``mixed_precision`` (``"no"`` or ``"bf16"``, DDP path only; None: accelerate's default, from
    ``ACCELERATE_MIXED_PRECISION``): bf16 autocast of every forward through the prepared
    network; the caller keeps the trainable weights in float32 (:mod:`igpo_kit.models.precision`). Under DeepSpeed
    the config's ``bf16`` section decides (bf16 compute, fp32 master weights and optimizer states).
    """
    quiet_deepspeed_on_cpu()
    from accelerate import Accelerator

    if deepspeed_config is None:
        return Accelerator(cpu=not torch.cuda.is_available(),
                           **({} if mixed_precision is None else {"mixed_precision": mixed_precision}))
    from accelerate.utils import DeepSpeedPlugin

    from igpo_kit.errors import ConfigError

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if not torch.cuda.is_available() and world > 1:
        raise ConfigError("deepspeed_config with more than one process needs GPUs: accelerate cannot run DeepSpeed "
                          "over several CPU processes (it finds no CPU backend); drop deepspeed_config to use data "
                          "parallel on CPU")
    if "RANK" not in os.environ and "WORLD_SIZE" not in os.environ:  # launcher-less single process
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
    cfg = resolve_deepspeed_config(deepspeed_config, micro_batch_size, max_grad_norm, world_size=world)
    bf16 = bool(cfg.get("bf16", {}).get("enabled", False))
    plugin = DeepSpeedPlugin(hf_ds_config=cfg)
    return Accelerator(deepspeed_plugin=plugin, mixed_precision="bf16" if bf16 else "no")


def is_deepspeed(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.DEEPSPEED
