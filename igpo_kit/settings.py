"""Settings objects and the jobs that take them: one dataclass field and one docstring line per setting.

A settings class is a plain dataclass whose docstring has an ``Attributes:`` section with one entry per field
(``name: what it is``, continuation lines indented further). A job takes the instance
(``rl(model, dataset, ..., settings: RLSettings, run)``) and :func:`flat_settings` gives the job the flat keyword
surface that recipes, ``-b`` bindings and sweep axes bind by name (``entry.rl.group_size = 8``): one keyword per
field, with the field's type and default, documented by the field's line. So adding a setting is one field and one
line in its class; the job, its recipes and the config checks see it from there.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import textwrap
import types
import typing
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_ENTRY = re.compile(r"^(\w+)\s*:\s*(.*)$")


def field_docs(cls: type) -> dict[str, str]:
    """``{field: its docstring entry}`` from the ``Attributes:`` section of ``cls``'s docstring (in order)."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    _, found, section = doc.partition("Attributes:\n")
    if not found:
        return {}
    section = textwrap.dedent(section)
    docs: dict[str, str] = {}
    name = None
    for line in section.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            m = _ENTRY.match(line)
            if m is None:  # the next section (``Note:``...) ends this one
                break
            name = m.group(1)
            docs[name] = m.group(2).strip()
        elif name is not None:
            docs[name] += " " + line.strip()
    return docs


def undocumented(cls: type) -> list[str]:
    """Fields of the settings dataclass ``cls`` without an ``Attributes:`` entry, and entries without a field."""
    names = [f.name for f in dataclasses.fields(cls)]
    docs = field_docs(cls)
    return [f"{cls.__name__}.{n}: no docstring line" for n in names if n not in docs] + [
        f"{cls.__name__}: documents {n}, which is not a field" for n in docs if n not in names]


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return inspect.Parameter.empty


def _as_tuple(value: Any, annotation: Any) -> Any:
    """A list bound to a ``tuple[...]`` field (gin reads ``[0.9, 0.99]`` as a list) becomes a tuple."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    members = typing.get_args(annotation) if union else (annotation,)
    if isinstance(value, list) and any((typing.get_origin(a) or a) is tuple for a in members):
        return tuple(value)
    return value


def settings_text(classes: dict[str, type]) -> str:
    """The docstring section listing the flat keywords of ``classes`` (``{job parameter: settings class}``)."""
    out = []
    for param, cls in classes.items():
        out.append(f"Settings (``{param}``, a :class:`{cls.__module__}.{cls.__name__}`; one keyword each):")
        for name, text in field_docs(cls).items():
            out.append(textwrap.fill(f"{name}: {text}", width=116, initial_indent="    ",
                                     subsequent_indent="        "))
    return "\n".join(out)


def flat_settings(**classes: type) -> Callable[[F], F]:
    """``@flat_settings(settings=RLSettings)``: the job's parameter ``settings`` becomes one keyword per field of
    ``RLSettings`` (in field order, where ``settings`` stood, with the field's annotation and default); a call packs
    them back into an ``RLSettings`` for the job. The keywords' docs are appended to the job's docstring.

    Raises:
        TypeError: at decoration, a name that two settings classes (or the job and a class) both define, or a field
            without its docstring line.
    """

    def wrap(fn: F) -> F:
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn)
        missing = [p for p in classes if p not in sig.parameters]
        if missing:
            raise TypeError(f"{fn.__qualname__} has no parameter {', '.join(missing)}")
        params: list[inspect.Parameter] = []
        owner: dict[str, type] = {}
        for p in sig.parameters.values():
            cls = classes.get(p.name)
            if cls is None:
                params.append(p.replace(annotation=hints.get(p.name, p.annotation)))
                continue
            problems = undocumented(cls)
            if problems:
                raise TypeError("; ".join(problems))
            types = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                params.append(inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                default=_default(f), annotation=types[f.name]))
                owner[f.name] = cls
        names = [p.name for p in params]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise TypeError(f"{fn.__qualname__}: {', '.join(clashes)} defined twice (job and settings)")
        flat = sig.replace(parameters=params, return_annotation=hints.get("return", sig.return_annotation))
        annotations = {p.name: p.annotation for p in params if p.annotation is not inspect.Parameter.empty}

        @functools.wraps(fn)
        def job(*args: Any, **kwargs: Any) -> Any:
            bound = flat.bind(*args, **kwargs)
            bound.apply_defaults()
            values = dict(bound.arguments)
            for param, cls in classes.items():
                values[param] = cls(**{n: _as_tuple(values.pop(n), annotations.get(n))
                                       for n in [f.name for f in dataclasses.fields(cls)]})
            return fn(**values)

        del job.__wrapped__  # type: ignore[attr-defined]  # gin (and inspect) would read the packed signature
        job.__signature__ = flat  # type: ignore[attr-defined]
        job.__annotations__ = {**annotations, **({"return": flat.return_annotation}
                                                 if flat.return_annotation is not inspect.Signature.empty else {})}
        job.__doc__ = inspect.cleandoc(fn.__doc__ or "") + "\n\n" + settings_text(classes)
        job.settings_classes = dict(classes)  # type: ignore[attr-defined]
        return typing.cast(F, job)

    return wrap
