"""Sweep specs: a base recipe and axes over gin bindings, expanded into cells.

A spec is a TOML file (``recipes/ablations/<name>.toml``)::

    base = "igpo_full.gin"                 # the recipe every cell starts from (path, or name under recipes/)
    name = "hint_ratio"                    # optional; default: the file name (sweep dir runs/sweeps/<name>)
    description = "Fig. 4: ..."            # optional
    baseline = "no_hints"                  # optional; the method `igpo-kit report` computes deltas against
    bindings = ["entry.rl.max_steps = 2"]  # optional; raw gin bindings of every cell
    gin_files = ["extra.gin"]              # optional; gin files parsed after the base recipe in every cell
    resources = "rl"                       # optional; resource profile of every cell on Slurm (slurm/resources/)
    cluster = "h100"                       # optional; cluster profile on Slurm (slurm/clusters/)

    [product]                              # grid: every combination of the values
    SEED = [0, 1, 2]
    "entropy_filter.top_fraction.entropy_top_fraction" = [0.2, 0.8, 1.0]

    [[zip]]                                # co-varying axes: equal-length lists, taken element by element
    "entry.rl.learning_rate" = [5e-7, 1e-6]
    "entry.rl.warmup_steps" = [50, 100]

    [[arm]]                                # named alternatives (each with its own bindings / gin files)
    name = "partial"
    [[arm]]
    name = "full"
    bindings = ["entry.rl.hint_ratio_low = 1.0", "entry.rl.hint_ratio_high = 1.0"]
    resources = "rl"                       # optional; this arm's resource profile (wins over the top-level one)
    [arm.product]                          # optional axes of this arm only (crossed with the global ones)
    RHO = [0.0, 0.1]

Expansion: arms x product x zip groups (an absent section counts as one empty choice). Axis values are TOML
values written as gin literals: numbers and booleans as such, lists/tables recursively, and strings as quoted
gin strings unless they start with ``@`` (a configurable reference) or ``%`` (a macro). Bindings lists are raw gin.

Each cell gets a stable id from its content: ``<arm>-<sha1(base recipe text, gin files' text, sorted
bindings)[:8]>`` (``<recipe stem>-...`` without arms), so the same cell always maps to the same run directory
and a changed value gives a new id.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import itertools
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from igpo_kit.errors import ConfigError
from igpo_kit.report.grouping import is_seed_key  # noqa: F401  (re-exported: sweeps label cells like reports)

TOP_KEYS = ("base", "name", "description", "baseline", "bindings", "gin_files", "resources", "cluster",
            "product", "zip", "arm")
ARM_KEYS = ("name", "description", "bindings", "gin_files", "product", "resources")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class Axis:
    """One swept key: its gin literals (what is bound) and the plain values (what reports plot)."""

    key: str
    literals: list[str]
    values: list[Any]


@dataclass
class Arm:
    name: str
    bindings: list[str] = field(default_factory=list)
    gin_files: list[str] = field(default_factory=list)
    product: list[Axis] = field(default_factory=list)
    description: str = ""
    resources: str | None = None  # resource profile of this arm's cells on Slurm (None: the spec's)


@dataclass
class Spec:
    """A parsed sweep spec (JSON-serialisable with :meth:`to_dict`, recorded in the sweep manifest)."""

    name: str
    base: str
    base_path: str
    description: str = ""
    baseline: str | None = None
    bindings: list[str] = field(default_factory=list)
    gin_files: list[str] = field(default_factory=list)
    resources: str | None = None
    cluster: str | None = None
    product: list[Axis] = field(default_factory=list)
    zips: list[list[Axis]] = field(default_factory=list)
    arms: list[Arm] = field(default_factory=list)
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Spec":
        d = dict(d)
        d["product"] = [Axis(**a) for a in d.get("product", [])]
        d["zips"] = [[Axis(**a) for a in z] for z in d.get("zips", [])]
        d["arms"] = [Arm(**{**a, "product": [Axis(**x) for x in a.get("product", [])]}) for a in d.get("arms", [])]
        return cls(**d)

    @property
    def axis_keys(self) -> list[str]:
        keys = [a.key for a in self.product] + [a.key for z in self.zips for a in z]
        keys += [a.key for arm in self.arms for a in arm.product]
        return list(dict.fromkeys(keys))


@dataclass
class Cell:
    """One expanded configuration: base recipe + gin files + bindings, with a content id."""

    id: str
    arm: str | None
    keys: dict[str, str]
    values: dict[str, Any]
    bindings: list[str]
    gin_files: list[str]
    base: str

    def label(self, short: dict[str, str] | None = None) -> str:
        parts = [self.arm] if self.arm else []
        parts += [f"{(short or {}).get(k, k)}={v}" for k, v in self.keys.items()]
        return " ".join(parts) or self.id

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------- literals


def gin_literal(value: Any, where: str = "value") -> str:
    """A TOML value as gin text: strings quoted unless they start with ``@`` or ``%``."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{where}: {value!r} has no gin literal")
        return repr(value)
    if isinstance(value, str):
        if value.startswith(("@", "%")):
            return value
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(gin_literal(v, where) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {gin_literal(v, where)}" for k, v in value.items()) + "}"
    raise ConfigError(f"{where}: a {type(value).__name__} ({value!r}) has no gin literal")


def literal_value(text: str) -> Any:
    """The Python value of a gin literal where it is one (``0.2`` -> 0.2, ``True`` -> True), else the text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def split_values(text: str) -> list[str]:
    """Split ``v1,v2,[a, b],'x,y'`` on top-level commas (brackets, parentheses and quotes respected)."""
    out, depth, quote, cur = [], 0, None, []
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return out


def parse_axis(text: str) -> Axis:
    """``--axis 'KEY=v1,v2'`` (values are gin literals, as typed) -> an Axis."""
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--axis {text!r}: expected KEY=v1,v2,...")
    literals = [v for v in split_values(values)]
    if not values.strip() or any(not v for v in literals):
        raise ConfigError(f"--axis {text!r}: empty value (expected KEY=v1,v2,...)")
    return Axis(key=key, literals=literals, values=[literal_value(v) for v in literals])


# ----------------------------------------------------------------------------------------------- loading


def _unknown(keys, allowed, where: str) -> list[str]:
    problems = []
    for k in keys:
        if k not in allowed:
            close = difflib.get_close_matches(k, allowed, n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(close)}?)" if close else f" (known keys: {', '.join(allowed)})"
            problems.append(f"{where}: unknown key {k!r}{hint}")
    return problems


def _str_list(value: Any, where: str, problems: list[str]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{where}: expected a list of strings, got {value!r}")
        return []
    return list(value)


def _axes(table: Any, where: str, problems: list[str], equal_length: bool = False) -> list[Axis]:
    if not isinstance(table, dict):
        problems.append(f"{where}: expected a table of KEY = [values], got {table!r}")
        return []
    axes = []
    for key, values in table.items():
        w = f"{where}.{key!r}" if "." in key else f"{where}.{key}"
        if not isinstance(values, list):
            problems.append(f"{w}: expected a list of values, got {values!r} (use bindings for a fixed value)")
            continue
        if not values:
            problems.append(f"{w}: empty list of values")
            continue
        try:
            axes.append(Axis(key=key, literals=[gin_literal(v, w) for v in values], values=list(values)))
        except ConfigError as exc:
            problems += exc.lines
    if equal_length and axes:
        lengths = {a.key: len(a.literals) for a in axes}
        if len(set(lengths.values())) > 1:
            problems.append(f"{where}: zipped axes must have equal lengths, got "
                            + ", ".join(f"{k} ({n})" for k, n in lengths.items()))
    return axes


def resolve_file(name: str, spec_dir: Path | None) -> Path | None:
    from igpo_kit import assets

    if spec_dir is not None and not Path(name).is_absolute() and (spec_dir / name).is_file():
        return (spec_dir / name).resolve()
    p = assets.resolve_recipe(name)
    return p.resolve() if p.is_file() else None


def _recipe_not_found(name: str, where: str) -> str:
    from igpo_kit.config import recipe_names

    close = difflib.get_close_matches(str(name).removeprefix("recipes/"), recipe_names(), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"{where}: recipe not found: {name}{hint}"


def spec_from_dict(data: dict[str, Any], source: str | None = None, default_name: str = "sweep",
                   spec_dir: Path | None = None) -> Spec:
    """Check a spec table (from TOML) and build a :class:`Spec`; every problem is reported at once."""
    where = source or "spec"
    problems = _unknown(data, TOP_KEYS, where)
    base = data.get("base")
    base_path = None
    if not isinstance(base, str) or not base:
        problems.append(f"{where}: 'base' (the base recipe) is required, e.g. base = \"igpo_full.gin\"")
    else:
        base_path = resolve_file(base, spec_dir)
        if base_path is None:
            problems.append(_recipe_not_found(base, f"{where}: base"))
    gin_files = []
    for f in _str_list(data.get("gin_files"), f"{where}: gin_files", problems):
        p = resolve_file(f, spec_dir)
        if p is None:
            problems.append(_recipe_not_found(f, f"{where}: gin_files"))
        else:
            gin_files.append(str(p))
    name = data.get("name", default_name)
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.append(f"{where}: name {name!r} must be letters, digits, '_', '-' or '.'")
    for k in ("description", "baseline", "resources", "cluster"):
        if k in data and not isinstance(data[k], str):
            problems.append(f"{where}: {k} must be a string, got {data[k]!r}")
    bindings = _str_list(data.get("bindings"), f"{where}: bindings", problems)
    product = _axes(data.get("product", {}), f"{where}: product", problems)
    zips_raw = data.get("zip", [])
    if isinstance(zips_raw, dict):
        zips_raw = [zips_raw]
    zips = []
    if not isinstance(zips_raw, list):
        problems.append(f"{where}: zip must be [[zip]] tables")
    else:
        for i, z in enumerate(zips_raw):
            axes = _axes(z, f"{where}: zip[{i}]", problems, equal_length=True)
            if axes:
                zips.append(axes)
    arms = []
    arms_raw = data.get("arm", [])
    if isinstance(arms_raw, dict):
        arms_raw = [arms_raw]
    if not isinstance(arms_raw, list):
        problems.append(f"{where}: arm must be [[arm]] tables")
        arms_raw = []
    seen: set[str] = set()
    for i, a in enumerate(arms_raw):
        aw = f"{where}: arm[{i}]"
        if not isinstance(a, dict):
            problems.append(f"{aw}: expected a table")
            continue
        problems += _unknown(a, ARM_KEYS, aw)
        aname = a.get("name")
        if not isinstance(aname, str) or not NAME_RE.match(aname):
            problems.append(f"{aw}: 'name' is required (letters, digits, '_', '-', '.'), got {aname!r}")
            continue
        aw = f"{where}: arm {aname!r}"
        if "resources" in a and not isinstance(a["resources"], str):
            problems.append(f"{aw}: resources must be a string, got {a['resources']!r}")
        if aname in seen:
            problems.append(f"{aw}: duplicate arm name")
        seen.add(aname)
        afiles = []
        for f in _str_list(a.get("gin_files"), f"{aw}: gin_files", problems):
            p = resolve_file(f, spec_dir)
            if p is None:
                problems.append(_recipe_not_found(f, f"{aw}: gin_files"))
            else:
                afiles.append(str(p))
        arms.append(Arm(name=aname, bindings=_str_list(a.get("bindings"), f"{aw}: bindings", problems),
                        gin_files=afiles, product=_axes(a.get("product", {}), f"{aw}: product", problems),
                        description=str(a.get("description", "")),
                        resources=a["resources"] if isinstance(a.get("resources"), str) else None))
    # one key on two axes would bind it twice in a cell
    global_keys = [ax.key for ax in product] + [ax.key for z in zips for ax in z]
    for key in sorted({k for k in global_keys if global_keys.count(k) > 1}):
        problems.append(f"{where}: key {key!r} appears on more than one axis")
    for arm in arms:
        for ax in arm.product:
            if ax.key in global_keys:
                problems.append(f"{where}: arm {arm.name!r}: key {ax.key!r} is also a global axis")
    if problems:
        raise ConfigError(*problems)
    spec = Spec(name=name, base=base, base_path=str(base_path), description=data.get("description", ""),
                baseline=data.get("baseline"), bindings=bindings, gin_files=gin_files,
                resources=data.get("resources"), cluster=data.get("cluster"), product=product, zips=zips,
                arms=arms, source=source)
    return spec


def default_name(path: Path) -> str:
    stem = path.name
    for suffix in (".toml", ".sweep"):
        stem = stem.removesuffix(suffix)
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem) or "sweep"


def find_spec(name: str | Path) -> Path:
    """A spec path as given, else relative to the recipes folder (``recipes/`` prefix optional)."""
    from igpo_kit import assets

    p = Path(name)
    if p.is_file():
        return p
    root = assets.path("recipes")
    rel = Path(*p.parts[1:]) if p.parts and p.parts[0] == "recipes" else p
    for cand in (root / rel, root / rel.with_suffix(".toml")):
        if cand.is_file():
            return cand
    names = sorted(str(q.relative_to(root)) for q in root.rglob("*.toml"))
    close = difflib.get_close_matches(str(rel), names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"sweep spec not found: {name}{hint}")


def load_spec(path: str | Path, text: str | None = None) -> Spec:
    """Read and check a TOML spec file (or its ``text``, e.g. as recorded in a manifest)."""
    path = Path(path)
    if text is None:
        path = find_spec(path)
        text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    return spec_from_dict(data, source=str(path), default_name=default_name(path), spec_dir=path.parent)


def inline_spec(recipe: str, axes: list[str], bindings: list[str] = (), gin_files: list[str] = (),
                name: str | None = None) -> Spec:
    """A spec from a recipe and ``--axis KEY=v1,v2`` strings (their product); values are gin literals."""
    problems = []
    base_path = resolve_file(recipe, None)
    if base_path is None:
        problems.append(_recipe_not_found(recipe, "sweep"))
    files = []
    for f in gin_files:
        p = resolve_file(f, None)
        if p is None:
            problems.append(_recipe_not_found(f, "-f"))
        else:
            files.append(str(p))
    product = []
    for a in axes:
        try:
            product.append(parse_axis(a))
        except ConfigError as exc:
            problems += exc.lines
    keys = [a.key for a in product]
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        problems.append(f"--axis {key}: given more than once")
    if problems:
        raise ConfigError(*problems)
    if name is None:
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", str(Path(recipe).with_suffix("")).removeprefix("recipes/"))
        digest = hashlib.sha1("\n".join(list(axes) + ["--"] + list(bindings) + list(gin_files)).encode())
        name = f"{stem}-{digest.hexdigest()[:6]}"
    return Spec(name=name, base=recipe, base_path=str(base_path), bindings=list(bindings), gin_files=files,
                product=product, source=None)


def add_axes(spec: Spec, axes: list[str]) -> Spec:
    """Extra ``--axis`` options on a TOML spec: more product axes."""
    new = [parse_axis(a) for a in axes]
    taken = set(spec.axis_keys)
    dup = [a.key for a in new if a.key in taken]
    if dup:
        raise ConfigError(*[f"--axis {k}: already an axis of the spec" for k in dup])
    spec.product = spec.product + new
    return spec


# ----------------------------------------------------------------------------------------------- expansion


def binding(key: str, literal: str) -> str:
    return f"{key} = {literal}"


def cell_id(prefix: str, base_text: str, gin_texts: list[str], bindings: list[str]) -> str:
    h = hashlib.sha1()
    h.update(base_text.encode())
    for t in gin_texts:
        h.update(b"\0file\0" + t.encode())
    for b in sorted(_canonical(b) for b in bindings):
        h.update(b"\0bind\0" + b.encode())
    return f"{prefix}-{h.hexdigest()[:8]}"


def _canonical(b: str) -> str:
    key, sep, value = b.partition("=")
    return f"{key.strip()} = {value.strip()}" if sep else b.strip()


def _choices(axes: list[Axis]) -> list[list[tuple[Axis, int]]]:
    """Product of the axes: each choice is a list of (axis, value index)."""
    return [list(zip(axes, idx)) for idx in itertools.product(*[range(len(a.literals)) for a in axes])]


def expand(spec: Spec) -> list[Cell]:
    """All cells: arms x product x zip groups, in that nesting order (arms outermost)."""
    missing = [f for f in [spec.base_path, *spec.gin_files, *[g for a in spec.arms for g in a.gin_files]]
               if not Path(f).is_file()]
    if missing:
        raise ConfigError(*[f"sweep {spec.name}: file not found: {f}" for f in missing])
    base_text = Path(spec.base_path).read_text()
    prefix_default = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(spec.base_path).stem)
    arms = spec.arms or [None]
    zip_choices = [[[(ax, i) for ax in z] for i in range(len(z[0].literals))] for z in spec.zips]
    cells: list[Cell] = []
    for arm in arms:
        axes = (arm.product if arm else []) + spec.product
        for prod in _choices(axes):
            for zc in itertools.product(*zip_choices) if zip_choices else [()]:
                chosen = list(prod) + [pair for group in zc for pair in group]
                keys = {ax.key: ax.literals[i] for ax, i in chosen}
                values = {ax.key: ax.values[i] for ax, i in chosen}
                bindings = list(spec.bindings) + (arm.bindings if arm else [])
                bindings += [binding(k, v) for k, v in keys.items()]
                gin_files = list(spec.gin_files) + (arm.gin_files if arm else [])
                texts = [Path(f).read_text() for f in gin_files]
                cid = cell_id(arm.name if arm else prefix_default, base_text, texts, bindings)
                cells.append(Cell(id=cid, arm=arm.name if arm else None, keys=keys, values=values,
                                  bindings=bindings, gin_files=gin_files, base=spec.base_path))
    ids = [c.id for c in cells]
    dups = sorted({i for i in ids if ids.count(i) > 1})
    if dups:
        raise ConfigError(*[f"cells {', '.join(c.label() for c in cells if c.id == d)} are identical ({d}): "
                            "remove the repeated value or arm" for d in dups])
    return cells


def short_keys(keys: list[str]) -> dict[str, str]:
    """Shortest unambiguous dotted suffix of each key (``entropy_filter.top_fraction.entropy_top_fraction`` ->
    ``entropy_top_fraction``)."""
    out = {}
    split = {k: k.replace("/", ".").split(".") for k in keys}
    for k, parts in split.items():
        for n in range(1, len(parts) + 1):
            cand = ".".join(parts[-n:])
            if all(".".join(p[-n:]) != cand for o, p in split.items() if o != k):
                out[k] = cand
                break
        else:
            out[k] = k
    return out


__all__ = ["Arm", "Axis", "Cell", "Spec", "add_axes", "cell_id", "expand", "find_spec", "gin_literal", "inline_spec",
           "is_seed_key", "literal_value", "load_spec", "parse_axis", "resolve_file", "short_keys", "spec_from_dict",
           "split_values"]
