"""Locate the data folders (recipes/, registry/, slurm/, cli/) in a checkout or an installed wheel.

In a wheel they live inside the package as ``igpo_kit/_recipes`` etc.; in a source checkout (editable
install) they are the top-level folders beside ``igpo_kit/``. ``$IGPO_KIT_<KIND>`` overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

_PKG = Path(__file__).resolve().parent
FOLDERS = ("recipes", "registry", "slurm", "cli")


def path(kind: str) -> Path:
    """Directory of the data folder ``kind`` (one of FOLDERS)."""
    if kind not in FOLDERS:
        raise ValueError(f"unknown asset folder {kind!r}; expected one of {FOLDERS}")
    env = os.environ.get(f"IGPO_KIT_{kind.upper()}")
    if env:
        return Path(env)
    packaged = _PKG / f"_{kind}"
    if packaged.is_dir():
        return packaged
    return _PKG.parent / kind


def resolve_recipe(name: str | os.PathLike) -> Path:
    """A recipe path as given, else relative to the recipes folder (``recipes/`` prefix optional)."""
    p = Path(name)
    if p.exists():
        return p
    rel = Path(*p.parts[1:]) if p.parts and p.parts[0] == "recipes" else p
    for cand in (path("recipes") / rel, path("recipes") / rel.with_suffix(".gin")):
        if cand.exists():
            return cand
    return p


def resolve_data(name: str) -> str:
    """A data path as given, or -- for ``recipes/...`` paths that do not exist here -- the packaged copy.

    Recipes refer to the small data files shipped with them (``recipes/data/...``) this way, so they run from
    any working directory and from an installed wheel.
    """
    p = Path(name)
    if p.exists() or not p.parts or p.parts[0] != "recipes":
        return name
    cand = path("recipes").joinpath(*p.parts[1:])
    return str(cand) if cand.exists() else name
