"""One typed registry per component kind.

Built-ins are declared in the catalog ``registry/<kind>.toml`` (``name -> "module:attr"``), so listing them
imports nothing heavy. User code registers with :func:`register` (a decorator), through the entry-point group
``igpo_kit.plugins`` (a module to import, or a callable to call), or explicitly with :func:`load_plugin`
(``--plugin MODULE_OR_FILE`` on the CLI). Unknown names raise :class:`UnknownComponent` naming the kind, the
close matches and where to look; a duplicate name raises :class:`DuplicateComponent` naming both origins.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from igpo_kit import assets
from igpo_kit.errors import ConfigError

ENTRY_POINT_GROUP = "igpo_kit.plugins"

#: The component kinds, one registry each (re-exported as ``igpo_kit.KINDS``).
KINDS = (
    "model",
    "dataset",
    "prompt",
    "sampler",
    "hint_chunker",
    "replacement_policy",
    "entropy_filter",
    "advantage_estimator",
    "grader",
    "logprob_estimator",
    "loss",
    "corruption",
    "rewrite_backend",
)


class UnknownComponent(ConfigError, LookupError):
    """A registry name (or kind) that does not exist."""


class DuplicateComponent(ConfigError):
    """Two components registered under the same kind and name."""


@dataclass
class Entry:
    """One registered component: ``target`` is a callable or a lazy ``"module:attr"`` string."""

    kind: str
    name: str
    target: Any
    summary: str = ""
    origin: str = "built-in"
    paper: str = ""
    status: str = "stable"

    def load(self) -> Callable:
        if isinstance(self.target, str):
            module, _, attr = self.target.partition(":")
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
            self.target = obj
        return self.target

    @property
    def target_path(self) -> str:
        if isinstance(self.target, str):
            return self.target
        return f"{self.target.__module__}:{self.target.__qualname__}"


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


class Registry:
    """Components of one kind, by name."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, entry: Entry) -> Entry:
        old = self._entries.get(entry.name)
        if old is not None:
            raise DuplicateComponent(
                f"duplicate {self.kind} {entry.name!r}: registered by {old.origin} "
                f"({old.target_path}) and again by {entry.origin} ({entry.target_path})"
            )
        self._entries[entry.name] = entry
        return entry

    def entry(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownComponent(
                f"unknown {self.kind} {name!r}{_suggest(name, self.names())} "
                f"(available: {', '.join(self.names()) or 'none'}; see `igpo-kit ls components --kind {self.kind}`; "
                f"plugins loaded: {', '.join(LOADED_PLUGINS) or 'none'}; add yours with --plugin or the "
                f"'{ENTRY_POINT_GROUP}' entry point)"
            ) from None

    def get(self, name: str) -> Callable:
        return self.entry(name).load()

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def _remove(self, name: str) -> None:
        self._entries.pop(name, None)


REGISTRIES: dict[str, Registry] = {kind: Registry(kind) for kind in KINDS}
LOADED_PLUGINS: list[str] = []
_state = {"catalog": False, "entry_points": False}


def _load_catalog() -> None:
    if _state["catalog"]:
        return
    _state["catalog"] = True
    folder = assets.path("registry")
    for kind in KINDS:
        file = folder / f"{kind}.toml"
        if not file.exists():
            continue
        with open(file, "rb") as f:
            table = tomllib.load(f)
        for name, spec in table.items():
            REGISTRIES[kind].add(
                Entry(
                    kind=kind,
                    name=name,
                    target=spec["target"],
                    summary=spec.get("summary", ""),
                    origin=f"built-in (registry/{kind}.toml)",
                    paper=spec.get("paper", ""),
                    status=spec.get("status", "stable"),
                )
            )


def _load_entry_points() -> None:
    if _state["entry_points"] or os.environ.get("IGPO_KIT_DISABLE_PLUGIN_AUTOLOAD") == "1":
        return
    _state["entry_points"] = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        label = f"{dist.name} {dist.version}" if dist is not None else ep.value
        _import_plugin(ep.value, origin=f"plugin {label} (entry point {ep.name})", load=ep.load)


def _import_plugin(spec: str, origin: str, load: Callable[[], Any]) -> None:
    global _CURRENT_ORIGIN
    prev, _CURRENT_ORIGIN = _CURRENT_ORIGIN, origin
    try:
        obj = load()
        if callable(obj) and not inspect.ismodule(obj):
            obj()
    finally:
        _CURRENT_ORIGIN = prev
    LOADED_PLUGINS.append(spec)


_CURRENT_ORIGIN: str | None = None


def registry(kind: str) -> Registry:
    """The registry of ``kind``, with the catalog and entry-point plugins loaded."""
    if kind not in REGISTRIES:
        raise UnknownComponent(f"unknown component kind {kind!r}{_suggest(kind, list(REGISTRIES))} (kinds: {', '.join(KINDS)})")
    _load_catalog()
    _load_entry_points()
    return REGISTRIES[kind]


def get(kind: str, name: str) -> Callable:
    """The component factory registered as ``name`` under ``kind``."""
    return registry(kind).get(name)


def register(kind: str, name: str | None = None, summary: str | None = None):
    """Decorator registering a factory as component ``kind/name`` (default name: the function's name)."""
    reg = registry(kind)

    def deco(fn):
        n = name or fn.__name__
        try:
            line = inspect.getsourcelines(fn)[1]
            where = f"{inspect.getsourcefile(fn)}:{line}"
        except (OSError, TypeError):
            where = fn.__module__
        origin = f"{_CURRENT_ORIGIN} at {where}" if _CURRENT_ORIGIN else where
        doc = (inspect.getdoc(fn) or "").strip().splitlines()
        reg.add(Entry(kind=kind, name=n, target=fn, summary=summary or (doc[0] if doc else ""), origin=origin))
        return fn

    return deco


def load_plugin(spec: str) -> None:
    """Load a plugin given as an importable module name or a path to a ``.py`` file (``--plugin``)."""
    if spec in LOADED_PLUGINS:
        return
    _load_catalog()
    _load_entry_points()
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"plugin file not found: {spec}")
        mod_name = f"igpo_kit_plugin_{path.stem}"

        def load():
            s = importlib.util.spec_from_file_location(mod_name, path.resolve())
            module = importlib.util.module_from_spec(s)
            sys.modules[mod_name] = module
            s.loader.exec_module(module)
            return module

    else:

        def load():
            try:
                return _import_module_or_from_cwd(spec)
            except ModuleNotFoundError as exc:
                raise ConfigError(f"plugin module {spec!r} cannot be imported: {exc}{_import_advice(spec, exc)}") from None

    _import_plugin(spec, origin=f"plugin {spec}", load=load)


def _import_module_or_from_cwd(spec: str):
    """``import spec``; when its top-level package is missing, retry with the current folder on ``sys.path`` (the
    ``igpo-kit`` console script, unlike ``python -m``, does not put it there), as ``python -m`` would."""
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        cwd = os.getcwd()
        if exc.name != spec.split(".")[0] or cwd in sys.path or "" in sys.path:
            raise
        sys.path.append(cwd)
        try:
            return importlib.import_module(spec)
        except ModuleNotFoundError:
            sys.path.remove(cwd)
            raise exc from None


def _import_advice(spec: str, exc: ModuleNotFoundError) -> str:
    """What to do when ``--plugin a.b.c`` cannot be imported: where ``a/`` is (an enclosing folder, found by walking
    up from the current one), and the three ways to make it importable."""
    top = spec.split(".")[0]
    if exc.name is None or exc.name.split(".")[0] != top:
        return ""  # the plugin module itself imports something missing: the message already names it
    cwd = Path.cwd()
    parent = next((d for d in [cwd, *cwd.parents][:6] if (d / top).is_dir() or (d / f"{top}.py").is_file()), None)
    file = parent / (spec.replace(".", "/") + ".py") if parent else None
    if parent is not None:
        advice = (f"; {top} is in {parent}: run from there (cd {parent}), or set PYTHONPATH={parent}, "
                  f"or install your package (pip install -e <its project folder>)")
        if file is not None and file.is_file():
            advice += f", or pass the file: --plugin {file}"
        return advice
    return (f"; run igpo-kit from the folder that contains {top}/, or add that folder to PYTHONPATH, or install "
            f"your package (pip install -e <its project folder>), or pass a .py file path to --plugin")


def facade_getattr(kind: str) -> Callable[[str], Any]:
    """PEP 562 ``__getattr__`` for ``igpo_kit.components.<kind>``: attribute access = registry lookup."""

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return get(kind, name)

    return __getattr__
