"""Atomic, resumable training checkpoints (SFT and RL).

Layout under a run directory::

    run_dir/checkpoints/
        step_<n>/            one complete checkpoint
            state.pt         ``torch.save`` of the trainer state (optimizer, scheduler, generator states,
                             data position, step, metrics offset, ...)
            model/           the weights, written by ``model_dir_writer`` (``save_pretrained`` or a state dict)
            checkpoint.json  human-readable summary (step, time, files)
        step_<n>.tmp/        a checkpoint being written (never loaded; removed by the next save)
        latest               one line: the name of the newest complete checkpoint (``step_<n>``)

Write protocol (crash-safe at every point): write everything into ``step_<n>.tmp/``, fsync every file and the
directory, rename it to ``step_<n>/``, fsync ``checkpoints/``, then update ``latest`` **last** (temp file + fsync +
``os.replace`` + fsync of the directory), then prune old checkpoints beyond ``keep``. A crash before the
``os.replace`` of ``latest`` leaves the previous checkpoint as the one that loads; :func:`load_latest` only ever
loads the directory named by ``latest`` and never a ``*.tmp`` one.

Generator helpers: :func:`capture_generators` / :func:`restore_generators` snapshot ``torch.Generator`` states
(``ByteTensor``), which ``torch.save`` stores exactly.

A single writer per run directory is assumed (the main process).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from igpo_kit.atomic import fsync_dir, fsync_tree, write_atomic

__all__ = [
    "CHECKPOINTS_DIR",
    "LATEST_FILE",
    "MODEL_SUBDIR",
    "STATE_FILE",
    "save_checkpoint",
    "load_latest",
    "latest_name",
    "list_checkpoints",
    "model_dir",
    "capture_generators",
    "restore_generators",
    "generator_state",
    "set_generator_state",
    "has_frozen_parameters",
    "trainable_state_dict",
    "load_trainable_state_dict",
    "dir_size",
    "load_file",
]

CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
STATE_FILE = "state.pt"
MODEL_SUBDIR = "model"
INFO_FILE = "checkpoint.json"
_STEP_RE = re.compile(r"^step_(\d+)$")


# --- fsync helpers ----------------------------------------------------------------------------------------------


# write protocol helpers: igpo_kit.atomic (fsync_dir, fsync_tree, write_atomic)


# --- layout -----------------------------------------------------------------------------------------------------


def _ckpt_root(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR


def model_dir(checkpoint: str | os.PathLike) -> Path:
    """The model sub-directory of a checkpoint directory (what ``model_dir_writer`` received)."""
    return Path(checkpoint) / MODEL_SUBDIR


def latest_name(run_dir: str | os.PathLike) -> str | None:
    """The checkpoint name stored in ``checkpoints/latest`` (``step_<n>``), or None if absent or malformed."""
    f = _ckpt_root(run_dir) / LATEST_FILE
    try:
        name = f.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return name if _STEP_RE.match(name) else None


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete-looking ``step_<n>`` directories (``*.tmp`` excluded), sorted by step."""
    root = _ckpt_root(run_dir)
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        m = _STEP_RE.match(p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p))
    return sorted(out)


# --- save / load ------------------------------------------------------------------------------------------------


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    state: Mapping[str, Any],
    model_dir_writer: Callable[[Path], None] | None = None,
    keep: int | None = 2,
) -> Path:
    """Atomically write checkpoint ``step`` and point ``checkpoints/latest`` at it.

    Args:
        run_dir: the run directory (``checkpoints/`` is created inside it).
        step: the optimizer step the state corresponds to (number of completed steps).
        state: the trainer state; saved with ``torch.save`` and loaded back with ``weights_only=True``, so it must
            consist of tensors, numbers, strings, ``None`` and (nested) dicts / lists / tuples of them (optimizer and
            ``LambdaLR`` state dicts, generator states from :func:`capture_generators` qualify).
        model_dir_writer: called with ``<checkpoint>/model`` (a fresh directory) to write the weights, e.g.
            ``lambda p: network.save_pretrained(p)``.
        keep: number of newest checkpoints to keep (the one ``latest`` names is always kept); None keeps all.
    Returns:
        the final checkpoint directory ``run_dir/checkpoints/step_<step>``.
    """
    if step < 0:
        raise ValueError(f"checkpoint step must be >= 0, got {step}")
    if keep is not None and keep < 1:
        raise ValueError(f"keep must be >= 1 (or None to keep all), got {keep}")
    root = _ckpt_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{int(step)}"
    final = root / name
    tmp = root / f"{name}.tmp"

    # leftovers of interrupted saves are never loaded; clear them so they do not accumulate
    for p in root.glob("*.tmp"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)

    tmp.mkdir()
    try:
        torch.save(dict(state), tmp / STATE_FILE)
        files = [STATE_FILE]
        if model_dir_writer is not None:
            mdir = tmp / MODEL_SUBDIR
            mdir.mkdir()
            model_dir_writer(mdir)
            files.append(MODEL_SUBDIR + "/")
        info = {"step": int(step), "time": time.time(), "files": files, "keys": sorted(str(k) for k in state)}
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
        fsync_tree(tmp)
    except BaseException:  # a full disk, a failing writer: leave no half-written checkpoint behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    if final.exists():
        # a previous save of the same step (complete, or renamed but never published by `latest`): move it away
        # first so that `final` never holds a mix of two saves.
        old = root / f"{name}.old.tmp"
        os.replace(final, old)
        fsync_dir(root)
        os.replace(tmp, final)
        fsync_dir(root)
        write_atomic(root / LATEST_FILE, name + "\n")
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
        fsync_dir(root)
        write_atomic(root / LATEST_FILE, name + "\n")

    if keep is not None:
        _prune(root, keep=keep, protect=name)
    return final


def _prune(root: Path, keep: int, protect: str) -> None:
    ckpts = list_checkpoints(root.parent)
    survivors = {p.name for _, p in ckpts[-keep:]} | {protect}
    for _, p in ckpts:
        if p.name not in survivors:
            shutil.rmtree(p, ignore_errors=True)
    fsync_dir(root)


def load_latest(run_dir: str | os.PathLike, map_location: Any = "cpu") -> tuple[Path, dict] | None:
    """The checkpoint named by ``checkpoints/latest`` and its state, or None if there is no complete one.

    ``*.tmp`` directories and any ``step_<n>`` directory not named by ``latest`` are ignored. If ``latest`` names a
    directory that is missing or lacks ``state.pt`` (a damaged run directory), a warning is issued and None is
    returned: nothing partial is ever loaded.

    Returns:
        ``(checkpoint_dir, state)``; the weights are under ``model_dir(checkpoint_dir)`` when a writer was given.
    """
    name = latest_name(run_dir)
    if name is None:
        return None
    path = _ckpt_root(run_dir) / name
    state_file = path / STATE_FILE
    if not state_file.is_file():
        warnings.warn(
            f"{_ckpt_root(run_dir) / LATEST_FILE} names {name!r}, which is missing or incomplete; not resuming from it",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    state = load_file(state_file, map_location=map_location)
    return path, state


def load_file(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` of a file inside a checkpoint; a damaged file is a
    :class:`~igpo_kit.errors.RunError` that names it and says how to resume from the previous checkpoint."""
    from igpo_kit.errors import RunError

    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle/zip/EOF errors of a truncated or corrupt file
        ckpt = next((p for p in [path, *path.parents] if _STEP_RE.match(p.name)), None)
        hint = ""
        if ckpt is not None:
            earlier = [p for step, p in list_checkpoints(ckpt.parent.parent) if p.name != ckpt.name
                       and step < int(_STEP_RE.match(ckpt.name).group(1))]
            latest = ckpt.parent / LATEST_FILE
            hint = (f"; resume from the previous checkpoint with `echo {earlier[-1].name} > {latest}`" if earlier
                    else f"; no earlier checkpoint: remove {ckpt} and {latest} to start over")
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise RunError(f"{path}: damaged checkpoint file ({type(exc).__name__}: {first}){hint}") from None


# --- generator states -------------------------------------------------------------------------------------------


def generator_state(generator: torch.Generator) -> torch.Tensor:
    """A copy of ``generator``'s state (a CPU ``ByteTensor``; works for CPU and CUDA generators)."""
    return generator.get_state().clone()


def set_generator_state(generator: torch.Generator, state: torch.Tensor) -> None:
    """Restore a state captured by :func:`generator_state` (moved to CPU uint8 as ``set_state`` requires)."""
    generator.set_state(state.detach().to(device="cpu", dtype=torch.uint8).contiguous())


def capture_generators(generators: Mapping[str, torch.Generator]) -> dict[str, torch.Tensor]:
    """``{name: state}`` for each generator (store it in the checkpoint state)."""
    return {name: generator_state(g) for name, g in generators.items()}


def restore_generators(generators: Mapping[str, torch.Generator], states: Mapping[str, torch.Tensor]) -> None:
    """Restore states captured by :func:`capture_generators`; every generator must have a saved state."""
    missing = [name for name in generators if name not in states]
    if missing:
        raise KeyError(f"no saved state for generator(s) {missing} (saved: {sorted(states)})")
    for name, g in generators.items():
        set_generator_state(g, states[name])


# --- what trains ------------------------------------------------------------------------------------------------


def has_frozen_parameters(module: torch.nn.Module) -> bool:
    """Whether some parameters of ``module`` do not train (a LoRA base, a frozen embedding)."""
    return any(not p.requires_grad for p in module.parameters())


def trainable_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``{name: tensor}`` of the parameters that train (``requires_grad``), detached: what a checkpoint of a run with
    frozen weights must hold (a LoRA adapter, not the frozen base it sits on)."""
    return {name: p.detach() for name, p in module.named_parameters() if p.requires_grad}


def load_trainable_state_dict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], where: Any = "") -> None:
    """Load a :func:`trainable_state_dict` into ``module`` in place; its keys must be exactly the trainable ones."""
    trainable = {name for name, p in module.named_parameters() if p.requires_grad}
    missing, unexpected = sorted(trainable - set(state)), sorted(set(state) - trainable)
    if missing or unexpected:
        raise RuntimeError(f"{where}: the saved trainable weights do not match the network "
                           f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    module.load_state_dict(dict(state), strict=False)


def dir_size(path: str | os.PathLike) -> int:
    """Bytes of the regular files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file() and not p.is_symlink())
