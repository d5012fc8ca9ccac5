"""Crash-safe file writes: a reader (or a resumed job) sees the old file or the new one, never a partial one.

:func:`write_atomic` writes a temporary file in the same directory, fsyncs it, ``os.replace``-s it over the
target (atomic on POSIX) and fsyncs the directory so that the rename itself survives a crash. Run records
(:mod:`igpo_kit.runs`), checkpoints (:mod:`igpo_kit.checkpoint`) and job manifests all write through it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a directory's entry table (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(root: str | os.PathLike) -> None:
    """fsync every regular file under ``root`` and every directory, ``root`` included."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath) / name
            if p.is_file() and not p.is_symlink():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        fsync_dir(dirpath)


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically and durably; the temp file is removed on failure."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


__all__ = ["fsync_dir", "fsync_tree", "write_atomic"]
