"""Compare graders on the same answers: accuracy of each, pairwise agreement, the items they disagree on.

What ``igpo-kit grade FILE --grader a,b,...`` prints (the CLI only formats it)::

    graders = build_graders(["math", "d1"], ["math.reduced_fractions=true"])
    cmp = compare(graders, completions, golds, timeout_s=5.0, workers=2)
    cmp.accuracy["math"], cmp.agreement[("math", "d1")], cmp.disagreements  # indices where verdicts differ

A verdict is ``score > 0``. All graders share one :class:`~igpo_kit.grading.pool.GradingPool` (forked once).
"""

from __future__ import annotations

import ast
import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Sequence

from igpo_kit.errors import ConfigError
from igpo_kit.grading.pool import GradeReport, GradingPool, grade_many

__all__ = ["parse_grader_args", "build_graders", "extracted_answer", "Comparison", "compare"]


def _value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_grader_args(names: Sequence[str], args: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["math.reduced_fractions=true", "timeout_s=2"]`` -> per-grader keyword arguments.

    ``name.key=value`` sets one grader's option; ``key=value`` sets it on every listed grader that has ``key``.
    Values: true/false, numbers, quoted or bare strings. Raises :class:`ConfigError` (one line) on a malformed
    pair, a grader not in ``names``, or a key no listed grader accepts (with close matches).
    """
    from igpo_kit.registry import get  # noqa: PLC0415

    params = {n: list(inspect.signature(get("grader", n)).parameters) for n in names}
    out: dict[str, dict[str, Any]] = {n: {} for n in names}
    for arg in args:
        key, sep, raw = arg.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--grader-arg {arg!r}: expected KEY=VALUE or GRADER.KEY=VALUE")
        target, dot, opt = key.rpartition(".")
        if dot:
            if target not in names:
                raise ConfigError(f"--grader-arg {arg!r}: grader {target!r} is not in --grader {','.join(names)}")
            targets = [target]
        else:
            targets = [n for n in names if opt in params[n]]
        if not targets or opt not in params[targets[0]]:
            known = sorted({p for n in (targets or names) for p in params[n]})
            close = difflib.get_close_matches(opt, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f" (options: {', '.join(known)})"
            where = targets[0] if dot else ", ".join(names)
            raise ConfigError(f"--grader-arg {arg!r}: {where} has no option {opt!r}{hint}")
        for n in targets:
            out[n][opt] = _value(raw)
    return out


def build_graders(names: Sequence[str], args: Sequence[str] = ()) -> dict[str, Any]:
    """Registered graders ``names`` (unknown names raise with close matches) built with their ``--grader-arg``s."""
    from igpo_kit.registry import get  # noqa: PLC0415

    if not names:
        raise ConfigError("--grader: give at least one grader name")
    dupes = sorted({n for n in names if list(names).count(n) > 1})
    if dupes:
        raise ConfigError(f"--grader: {', '.join(dupes)} listed twice")
    kwargs = parse_grader_args(names, args)
    built = {}
    for n in names:
        try:
            built[n] = get("grader", n)(**kwargs[n])
        except TypeError as exc:
            raise ConfigError(f"grader {n}: {exc}") from None
    return built


def extracted_answer(grader: Any, completion: str) -> str | None:
    """The answer ``grader`` reads from ``completion`` (its ``answer``/``prediction`` method), None if it has none."""
    for attr in ("answer", "prediction"):
        fn = getattr(grader, attr, None)
        if callable(fn):
            try:
                got = fn(completion)
            except Exception:  # noqa: BLE001 - a display helper never fails the run
                return None
            if got is None:
                return None
            return str(getattr(got, "text", got))
    return None


@dataclass
class Comparison:
    """Verdicts of several graders on the same ``n`` answers."""

    names: list[str]
    reports: dict[str, GradeReport]
    verdicts: dict[str, list[bool]]
    n: int
    agreement: dict[tuple[str, str], float] = field(default_factory=dict)
    disagreements: list[int] = field(default_factory=list)

    @property
    def accuracy(self) -> dict[str, float]:
        return {k: sum(v) / self.n if self.n else 0.0 for k, v in self.verdicts.items()}

    def label_agreement(self, labels: Sequence[bool]) -> dict[str, float]:
        """Fraction of items where each grader's verdict equals ``labels[i]``."""
        return {k: sum(a == bool(b) for a, b in zip(v, labels)) / self.n if self.n else 0.0
                for k, v in self.verdicts.items()}


def compare(
    graders: dict[str, Any],
    completions: Sequence[str],
    golds: Sequence[str],
    *,
    timeout_s: float = 5.0,
    workers: int = 2,
    progress: bool = False,
) -> Comparison:
    """Grade the answers with every grader (one shared pool), then agreement and disagreeing items."""
    names = list(graders)
    reports: dict[str, GradeReport] = {}
    with GradingPool(workers=max(1, workers)) as pool:
        for name in names:
            reports[name] = grade_many(graders[name], list(completions), list(golds), timeout_s=timeout_s,
                                       workers=workers, progress=progress, pool=pool)
    verdicts = {k: [s > 0 for s in r.scores] for k, r in reports.items()}
    n = len(completions)
    agreement = {}
    for a in names:
        for b in names:
            same = sum(x == y for x, y in zip(verdicts[a], verdicts[b]))
            agreement[(a, b)] = same / n if n else 1.0
    disagreements = [i for i in range(n) if len({verdicts[k][i] for k in names}) > 1]
    return Comparison(names=names, reports=reports, verdicts=verdicts, n=n, agreement=agreement,
                      disagreements=disagreements)
