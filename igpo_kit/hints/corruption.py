"""Noisy-trace corruptions for the robustness study (paper App. J, Table 4; spec sec. 3.6; no released code).

Each candidate token of the kind is corrupted independently with probability ``rate`` (rho in [0, 0.5] in the
paper). A corruption is a ``str -> str`` function applied to the ground-truth trace y* **before** it is tokenized
and chunked (:func:`igpo_kit.hints.answer_span.tokenize_trace`), so the injected hints are noisy:

* ``number``: a number (``120``, ``3.5``, ``1,000``) becomes a different one: ``v + d`` with ``d`` uniform on
  ``{-10..-1, 1..10}`` (``v + |d|`` if that would go negative), decimals and thousands separators kept
  (``8 x 15 = 120`` -> ``8 x 15 = 130``). Never a no-op.
* ``operator``: ``\\times <-> \\div``, ``\\cdot -> \\div``, ``x <-> /`` (the unicode signs), ``+ <-> -``,
  ``* <-> /``. ASCII ``+ - * /`` count as operators only between digits, spaces or brackets (so hyphenated
  words, ``</tag>`` and ``$-3$`` are left alone).
* ``logic``: connective swaps (``therefore -> however``, ``so -> but``, ``because -> although``, ... see
  :data:`LOGIC_SWAPS`), case preserved.
* ``hesitation``: ``umm``/``wait``/``hmm`` inserted before a word (``Let's`` -> ``Umm let's``).
* ``mixed``: every word, number and operator is a candidate; a corrupted one gets a kind drawn uniformly from
  those applicable to it (numbers: number; operators: operator; connectives: logic or hesitation; other words:
  hesitation), so the per-candidate corruption probability stays ``rate``.

Candidates: numbers, operators, and words not part of a LaTeX command (``\\frac``) or a tag (``<reasoning>``).

The final-answer region (:func:`~igpo_kit.hints.answer_span.find_answer_span`) is left untouched by default
(``protect_answer=True``). App. J corrupts the *hints*, and hints never contain the answer region, so this changes
nothing a rollout sees; it keeps the answer markers intact so answer exclusion still finds them after corruption
(a hesitation word inserted into ``The answer is:`` would otherwise hide the answer from
:func:`~igpo_kit.hints.answer_span.find_answer_span` and leak it into hints). ``protect_answer=False`` corrupts the
whole string.

All randomness comes from the ``torch.Generator`` passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from igpo_kit.hints.answer_span import find_answer_span

__all__ = [
    "Corruption",
    "CorruptionResult",
    "LOGIC_SWAPS",
    "OPERATOR_SWAPS",
    "HESITATIONS",
    "number",
    "operator",
    "logic",
    "hesitation",
    "mixed",
]

LOGIC_SWAPS = {
    "therefore": "however",
    "however": "therefore",
    "thus": "however",
    "hence": "however",
    "so": "but",
    "but": "so",
    "because": "although",
    "although": "because",
    "since": "although",
    "and": "or",
    "or": "and",
}
OPERATOR_SWAPS = {
    "\\times": "\\div",
    "\\div": "\\times",
    "\\cdot": "\\div",
    "×": "÷",
    "÷": "×",
    "+": "-",
    "-": "+",
    "−": "+",
    "*": "/",
    "/": "*",
}
HESITATIONS = ("umm", "wait", "hmm")
KINDS = ("number", "operator", "logic", "hesitation", "mixed")

_TOKEN_RE = re.compile(
    r"(?P<num>(?<![\w.\\])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)"
    r"|(?P<op>\\times(?![A-Za-z])|\\div(?![A-Za-z])|\\cdot(?![A-Za-z])|[×÷−]"
    r"|(?<=[\d\s)\]}])[-+*/](?=[\d\s(\[{\\]))"
    r"|(?P<word>(?<![\\A-Za-z<>/_'’])[A-Za-z][A-Za-z'’]*)"
)


@dataclass(frozen=True)
class CorruptionResult:
    """A corrupted trace with counts (``n_corrupted / n_candidates`` estimates rho)."""

    text: str
    n_candidates: int
    n_corrupted: int


def _kinds_for(group: str, token: str, kind: str) -> tuple[str, ...]:
    """Corruption kinds applicable to a candidate token under ``kind`` (empty: not a candidate)."""
    is_logic = group == "word" and token.lower() in LOGIC_SWAPS
    options = {
        "num": ("number",),
        "op": ("operator",),
        "word": ("logic", "hesitation") if is_logic else ("hesitation",),
    }[group]
    if kind == "mixed":
        return options
    if kind == "logic":
        return ("logic",) if is_logic else ()
    return (kind,) if kind in options else ()


def _match_case(new: str, old: str) -> str:
    if len(old) > 1 and old.isupper():
        return new.upper()
    if old[0].isupper():
        return new[0].upper() + new[1:]
    return new


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=generator, device=generator.device).item())


def _corrupt_number(token: str, generator: torch.Generator) -> str:
    delta = _randint(1, 10, generator) * (1 if _randint(0, 1, generator) else -1)
    int_part, dot, frac = token.partition(".")
    commas = "," in int_part
    value = int(int_part.replace(",", ""))
    new = value + delta if value + delta >= 0 else value + abs(delta)
    text = f"{new:,}" if commas else str(new)
    return text + dot + frac


def _corrupt(kind: str, token: str, generator: torch.Generator) -> str:
    if kind == "number":
        return _corrupt_number(token, generator)
    if kind == "operator":
        return OPERATOR_SWAPS[token]
    if kind == "logic":
        return _match_case(LOGIC_SWAPS[token.lower()], token)
    filler = HESITATIONS[_randint(0, len(HESITATIONS) - 1, generator)]
    if len(token) > 1 and token[0].isupper() and token[1:].islower():
        return filler.capitalize() + " " + token[0].lower() + token[1:]
    return (filler.capitalize() if token[0].isupper() else filler) + " " + token


@dataclass(frozen=True)
class Corruption:
    """Trace corruption of one ``kind`` (App. J). Build with :func:`number`, :func:`operator`, :func:`logic`,
    :func:`hesitation`, :func:`mixed`.

    Attributes:
        kind: one of ``number``, ``operator``, ``logic``, ``hesitation``, ``mixed``.
        rate: rho, the probability that each candidate token is corrupted (independently).
        protect_answer: leave the final-answer region untouched (see the module docstring).
    """

    kind: str = "mixed"
    rate: float = 0.1
    protect_answer: bool = True

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown corruption kind {self.kind!r} (one of {', '.join(KINDS)})")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"corruption rate (rho) must lie in [0, 1], got {self.rate}")

    def candidates(self, trace: str) -> list[tuple[re.Match, tuple[str, ...]]]:
        """The candidate tokens of ``trace`` for this kind, each with its applicable corruption kinds."""
        span = find_answer_span(trace) if self.protect_answer else None
        out = []
        for m in _TOKEN_RE.finditer(trace):
            if span is not None and m.end() > span[0] and m.start() < span[1]:
                continue
            kinds = _kinds_for(m.lastgroup, m.group(), self.kind)
            if kinds:
                out.append((m, kinds))
        return out

    def apply(self, trace: str, generator: torch.Generator) -> CorruptionResult:
        """Corrupt ``trace``; returns the text and the numbers of candidate and corrupted tokens.

        One uniform draw per candidate decides corruption (``u < rate``); each corrupted token then draws its kind
        (``mixed``) and its replacement from ``generator``.
        """
        cands = self.candidates(trace)
        if not cands:
            return CorruptionResult(trace, 0, 0)
        u = torch.rand(len(cands), generator=generator, dtype=torch.float64, device=generator.device).tolist()
        pieces, last, n_corrupted = [], 0, 0
        for (m, kinds), ui in zip(cands, u):
            if ui >= self.rate:
                continue
            kind = kinds[_randint(0, len(kinds) - 1, generator)] if len(kinds) > 1 else kinds[0]
            pieces += [trace[last : m.start()], _corrupt(kind, m.group(), generator)]
            last = m.end()
            n_corrupted += 1
        pieces.append(trace[last:])
        return CorruptionResult("".join(pieces), len(cands), n_corrupted)

    def __call__(self, trace: str, generator: torch.Generator) -> str:
        """The corrupted trace (rate 0: ``trace`` unchanged)."""
        return self.apply(trace, generator).text


def number(rate: float = 0.1, protect_answer: bool = True) -> Corruption:
    """Numeric errors (App. J): each number changes with probability rho (``8 x 15 = 120`` -> ``= 130``).

    Args:
        rate: rho.
        protect_answer: leave the final-answer region untouched.
    """
    return Corruption("number", rate, protect_answer)


def operator(rate: float = 0.1, protect_answer: bool = True) -> Corruption:
    """Operator swaps (App. J): each operator swapped with probability rho (``\\div -> \\times``, ``+ -> -``).

    Args:
        rate: rho.
        protect_answer: leave the final-answer region untouched.
    """
    return Corruption("operator", rate, protect_answer)


def logic(rate: float = 0.1, protect_answer: bool = True) -> Corruption:
    """Logic-word swaps (App. J): each connective swapped with probability rho (``therefore -> however``).

    Args:
        rate: rho.
        protect_answer: leave the final-answer region untouched.
    """
    return Corruption("logic", rate, protect_answer)


def hesitation(rate: float = 0.1, protect_answer: bool = True) -> Corruption:
    """Hesitation tokens (App. J): ``umm``/``wait``/``hmm`` inserted before each word with probability rho.

    Args:
        rate: rho.
        protect_answer: leave the final-answer region untouched.
    """
    return Corruption("hesitation", rate, protect_answer)


def mixed(rate: float = 0.1, protect_answer: bool = True) -> Corruption:
    """All four (App. J, Table 4 "Mixed"): each word/number/operator corrupted with probability rho by a kind
    drawn uniformly among those applicable to it.

    Args:
        rate: rho.
        protect_answer: leave the final-answer region untouched.
    """
    return Corruption("mixed", rate, protect_answer)
