"""The gin layer: parse recipes and CLI overrides, validate them, and save what ran.

This is the only module that imports gin. Recipes wire registered components by name
(``from igpo_kit.components import sampler`` then ``@sampler.low_confidence()``) and bind one root job,
a plain function in :mod:`igpo_kit.entry` (``entry.evaluate``, ``entry.rl``, ...).

Validation runs before anything else and reports every problem it finds, one line each:
gin's own errors (file and line), unknown components or parameters (with close matches), values whose type
does not match the annotation, and macros that nothing uses (gin silently accepts a typo'd ``-b LRR=1``).
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import logging
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gin

from igpo_kit import assets, entry
from igpo_kit.errors import ConfigError
from igpo_kit.registry import KINDS, UnknownComponent, registry

COMPONENTS_PREFIX = "igpo_kit.components."
ENTRY_PREFIX = "igpo_kit.entry."
MACRO = "gin.macro"


@dataclass
class Config:
    """A parsed, validated configuration.

    Attributes:
        text: the full resolved config (``gin.config_str()``): what crosses into a job, verbatim.
        job: the root entry name (``evaluate``, ``rl``, ``sft``, ...).
        recipe: the recipe file, if any; files: every gin file parsed (recipe + ``-f``); bindings: ``-b`` overrides.
    """

    text: str
    job: str
    recipe: Path | None = None
    files: list[str] = field(default_factory=list)
    bindings: list[str] = field(default_factory=list)

    def query(self, key: str, default: Any = None) -> Any:
        """Value bound to ``key`` (``entry.rl.seed``, ``SEED``), or ``default``."""
        return query(key, default)


class _QuietRoot(logging.Filter):
    def filter(self, record):  # gin logs "Path not found" on every search-path lookup
        return "Path not found" not in record.getMessage()


@contextlib.contextmanager
def _gin_logging():
    root = logging.getLogger()
    flt = _QuietRoot()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


def _one_line(exc: BaseException, file: str | None = None) -> str:
    """gin's multi-line error (message + 'In file ..., line N' + source) as one line, located in ``file``."""
    text = str(exc)
    if file and "In file" not in text and not getattr(exc, "filename", None):
        first = text.splitlines()[0] if text else type(exc).__name__
        return f"{file}: {type(exc).__name__ if type(exc).__name__ != 'TokenError' else 'syntax error'}: {first}"
    if isinstance(exc, SyntaxError) and getattr(exc, "filename", None):
        return f"{exc.filename}:{exc.lineno}: syntax error: {exc.msg}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    msg = lines[0]
    m = re.search(r'In file "([^"]+)", line (\d+)', text)
    if m:
        return f"{m.group(1)}:{m.group(2)}: {msg}"
    m = re.search(r"In bindings string line \d+", text)
    if m and len(lines) > 2:
        return f"binding '{lines[2]}': {msg}"
    return msg


def _known_selectors() -> list[str]:
    names = [f"entry.{n}" for n in entry.JOBS]
    for kind_reg in _all_component_names():
        names.append(kind_reg)
    return names


def _all_component_names() -> list[str]:

    out = []
    for kind in KINDS:
        out += [f"{kind}.{n}" for n in registry(kind).names()]
    return out


def _enrich(msg: str) -> str:
    """Add close matches to gin's 'No configurable matching' / 'doesn't have a parameter' errors."""
    m = re.search(r"Couldn't resolve selector ([\w.]+);", msg)
    if m:
        close = difflib.get_close_matches(m.group(1), _known_selectors(), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return f"{msg[:m.start()]}unknown configurable '{m.group(1)}'{hint}"
    m = re.search(r"No configurable matching '([^'@()]+)'", msg)
    if m:
        close = difflib.get_close_matches(m.group(1), _known_selectors(), n=3, cutoff=0.6)
        if close:
            msg += f" (did you mean {', '.join(close)}?)"
        return msg
    m = re.search(r"Configurable '([^']+)' doesn't have a parameter named '([^']+)'", msg)
    if m:
        fn = _resolve_selector(m.group(1))
        if fn is not None:
            params = list(inspect.signature(fn).parameters)
            close = difflib.get_close_matches(m.group(2), params, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else f"parameters: {', '.join(params)}"
            msg += f" ({hint})"
    return msg


def _resolve_selector(sel: str):
    """The Python callable behind a gin selector (component, entry or any ``module.attr``), or None."""
    short = sel.removeprefix("igpo_kit.").removeprefix("components.")
    parts = short.split(".")
    if len(parts) == 2 and parts[0] == "entry":
        return getattr(entry, parts[1], None)
    if len(parts) == 2:
        try:
            return registry(parts[0]).get(parts[1])
        except (UnknownComponent, ImportError, AttributeError):
            pass
    module, _, attr = sel.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        return None


def recipe_names() -> list[str]:
    """The runnable recipes under ``recipes/`` (``_name.gin`` files are include fragments, e.g. shared settings)."""
    root = assets.path("recipes")
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.gin") if not p.name.startswith("_"))


def find_recipe(name: str | Path) -> Path:
    p = assets.resolve_recipe(name)
    if not p.exists():
        close = difflib.get_close_matches(str(Path(name)).removeprefix("recipes/"), recipe_names(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `igpo-kit ls recipes`"
        raise ConfigError(f"recipe not found: {name}{hint}")
    return p


def parse(
    recipe: str | Path | None = None,
    gin_files: list[str] | tuple = (),
    bindings: list[str] | tuple = (),
    text: str | None = None,
) -> Config:
    """Parse a recipe (or a saved config ``text``), extra gin files and bindings; validate; return a Config.

    Raises:
        ConfigError: every problem found, one line each.
    """
    gin.clear_config(clear_constants=False)
    gin.add_config_file_search_path(str(assets.path("recipes")))
    errors: list[str] = []
    files: list[str] = []
    recipe_path = None
    with _gin_logging():
        if recipe is not None:
            try:
                recipe_path = find_recipe(recipe)
                files.append(str(recipe_path))
            except ConfigError as exc:
                errors += exc.lines
        for f in gin_files:
            try:
                files.append(str(find_recipe(f)))
            except ConfigError:
                errors.append(f"gin file not found: {f}")
        errors += _credential_problems(files, bindings)
        if errors:
            raise ConfigError(*errors)
        if text is not None:
            try:
                gin.parse_config(text)
            except BaseException as exc:  # noqa: BLE001 - gin raises many types
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                raise ConfigError(f"saved config: {_enrich(_one_line(exc))}") from None
        for f in files:
            try:
                gin.parse_config_file(f)
            except BaseException as exc:  # noqa: BLE001
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                errors.append(_enrich(_one_line(exc, f)))
        header = _binding_header()
        for b in bindings:
            b = _normalise_binding(b)
            try:
                gin.parse_config(header + b)
            except BaseException as exc:  # noqa: BLE001
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                errors.append(f"binding {b!r}: {_enrich(_one_line(exc)).split(': ', 1)[-1]}"
                              if not isinstance(exc, UnknownComponent) else f"binding {b!r}: {str(exc).splitlines()[0]}")
    if not errors:
        errors += validate()
    job = None
    if not errors:
        jobs = configured_jobs()
        if len(jobs) != 1:
            errors.append(
                f"a recipe must configure exactly one job (entry.{'/'.join(entry.JOBS)}); found: {', '.join(jobs) or 'none'}"
            )
        else:
            job = jobs[0]
    if errors:
        raise ConfigError(*errors)
    return Config(text=gin.config_str(), job=job, recipe=recipe_path, files=files, bindings=list(bindings))


def _credential_problems(files: list[str], bindings) -> list[str]:
    """Recipe lines and bindings that look like credentials, named by place only (the value is never echoed)."""
    from igpo_kit.secrets import ADVICE, describe

    problems = []
    for f in files:
        for lineno, line in enumerate(Path(f).read_text(errors="replace").splitlines(), 1):
            what = describe(line.split("#", 1)[0])
            if what:
                problems.append(f"{f}:{lineno}: looks like a credential ({what}); {ADVICE}")
    for i, b in enumerate(bindings, 1):
        what = describe(b)
        if what:
            key = b.partition("=")[0].strip() if "=" in b else f"#{i}"
            key = key if not describe(key) else f"#{i}"
            problems.append(f"binding {key}: looks like a credential ({what}); refused, nothing was written; {ADVICE}")
    return problems


def _binding_header() -> str:
    """Import lines that make a ``-b`` binding see what the recipe sees (gin's dynamic registration needs an
    import for every symbol): the recipe's own imports, the entry module and every component facade."""

    lines = {"from igpo_kit import entry"} | {f"from igpo_kit.components import {k}" for k in KINDS}
    lines |= {imp.format() for imp in gin.config._IMPORTS if not imp.module.startswith("__gin__")}
    return "from __gin__ import dynamic_registration\n" + "\n".join(sorted(lines)) + "\n"


def _normalise_binding(b: str) -> str:
    """``key=value`` -> ``key = value``; a leading ``igpo_kit.`` is optional in keys."""
    key, sep, value = b.partition("=")
    if not sep:
        return b
    key = key.strip()
    return f"{key} = {value.strip()}"


def _walk_refs(value: Any):
    if isinstance(value, gin.config.ConfigurableReference):
        yield value
    elif isinstance(value, (list, tuple, set)):
        for v in value:
            yield from _walk_refs(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _walk_refs(v)


def _macro_value(name: str) -> Any:
    return gin.config._CONFIG.get((name, MACRO), {}).get("value")


def _deref(value: Any, depth: int = 0) -> Any:
    """Follow macro references to their literal value (components stay references)."""
    if isinstance(value, gin.config.ConfigurableReference) and value.configurable.selector == MACRO and depth < 20:
        return _deref(_macro_value(value.scoped_selector.split("/")[0]), depth + 1)
    return value


def configured_jobs() -> list[str]:
    out = []
    for (_scope, selector) in gin.config._CONFIG:
        if selector.startswith(ENTRY_PREFIX):
            out.append(selector.removeprefix(ENTRY_PREFIX))
    return sorted(set(out))


def validate() -> list[str]:
    """Type checks of bound values and unused macros over the current gin config; returns problems."""
    problems: list[str] = []
    used_macros: set[str] = set()
    defined_macros: list[str] = []
    for (scope, selector), params in gin.config._CONFIG.items():
        if selector == MACRO:
            defined_macros.append(scope)
            for ref in _walk_refs(params.get("value")):
                if ref.configurable.selector == MACRO:
                    used_macros.add(ref.scoped_selector.split("/")[0])
            continue
        for ref in _walk_refs(list(params.values())):
            if ref.configurable.selector == MACRO:
                used_macros.add(ref.scoped_selector.split("/")[0])
        fn = _resolve_selector(selector)
        if fn is None:
            continue
        short = selector.removeprefix(COMPONENTS_PREFIX).removeprefix("igpo_kit.")
        try:
            hints = typing.get_type_hints(fn)
        except Exception:  # noqa: BLE001 - unresolvable annotations are not the user's problem
            hints = {}
        for name, value in params.items():
            ann = hints.get(name)
            if ann is None:
                continue
            literal = _deref(value)
            if isinstance(literal, gin.config.ConfigurableReference):
                continue
            if not _type_ok(literal, ann):
                problems.append(
                    f"{short}.{name} = {literal!r}: expected {_type_name(ann)}, got {type(literal).__name__}"
                )
    from igpo_kit.config.preflight import value_problems

    problems += value_problems()
    for name in defined_macros:
        if name not in used_macros:
            close = difflib.get_close_matches(name, sorted(set(defined_macros) - {name}), n=2, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            problems.append(f"macro {name} is defined but nothing uses it{hint}")
    return problems


def _type_name(ann: Any) -> str:
    """``int``, ``tuple[float, float]``, ``str | None``: a class by its name, anything else as written."""
    return ann.__name__ if isinstance(ann, type) and not typing.get_args(ann) else str(ann).replace("typing.", "")


def _type_ok(value: Any, ann: Any) -> bool:
    if ann is Any or ann is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_type_ok(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if ann is type(None):
        return value is None
    if ann is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if ann is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if ann is bool:
        return isinstance(value, bool)
    if ann is str:
        return isinstance(value, str)
    if origin in (list, tuple, typing.Sequence, __import__("collections.abc").abc.Sequence) or ann in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(args) == len(value) and all(_type_ok(v, a) for v, a in zip(value, args))
        return not args or all(_type_ok(v, args[0]) for v in value)
    if origin in (dict, typing.Mapping) or ann is dict:
        return isinstance(value, dict)
    if isinstance(ann, type):
        return isinstance(value, ann) or value is None and False
    return True


def query(key: str, default: Any = None) -> Any:
    try:
        return _deref(gin.query_parameter(key))
    except (ValueError, KeyError):
        return default


def call_job(config: Config, **kwargs: Any) -> Any:
    """Call the configured root job with gin's bindings plus ``kwargs`` (e.g. ``run=``)."""
    fn = getattr(entry, config.job)
    configured = gin.get_configurable(fn)
    try:
        return configured(**kwargs)
    except RuntimeError as exc:
        if "Required bindings" in str(exc):
            raise ConfigError(str(exc).splitlines()[0]) from None
        raise


def operative_text() -> str:
    return gin.operative_config_str()
