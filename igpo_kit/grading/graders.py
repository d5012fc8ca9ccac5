"""Graders: turn one completion and its gold answer into a reward.

Grader protocol (what the RL loop, the evaluator and :func:`igpo_kit.grading.pool.grade_many` rely on)::

    grader.name: str                         # registry-style name ("math_verify", "gsm8k", ...)
    grader.role: str                         # "correctness" or "format"
    grader.max_score: float                  # the score of a fully correct / well-formed completion
    grader.score(completion: str, gold: str) -> float

* A **correctness** grader's ``score`` is the correctness reward in ``[0, correct_value]`` (binary by default:
  ``correct_value`` or 0). The IGPO trigger (spec sec. 4) looks at correctness scores only.
* A **format** grader's ``score`` is a format reward in ``[0, max_score]`` (``format``: 0 or ``weight``;
  ``xmlcount``: multiples of ``0.125 * weight`` up to ``0.75 * weight``).
* ``score`` is pure and never raises on a malformed completion (it scores 0). Graders are small frozen
  dataclasses defined at module level, so they pickle and run in a process pool.
* Optional: ``score_checked(completion, gold)`` = ``score`` but raises :class:`GradingTimeout` instead of quietly
  scoring 0 when its own time limit fired (the pool uses it to count timeouts); ``quick_score(completion, gold)``
  -> float or None, the score when it is certain from cheap string work (the pool runs it in-process first and
  sends only the undecided answers to workers); ``prepare()`` warms imports
  before worker processes are forked; class attributes ``pure`` (bounded-time string processing, safe to run
  in-process in any thread) and ``self_timed`` (bounds its own time in the main thread).

Registered factories (``registry/grader.toml``): :func:`math_verify` (default correctness), :func:`gsm8k`,
:func:`official` (the released 3.0/0.0 reward), :func:`format`, :func:`xmlcount`.
"""

from __future__ import annotations

import logging
import math as _math
import re
import signal
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Callable, ClassVar

from igpo_kit.errors import ConfigError
from igpo_kit.grading import extract
from igpo_kit.grading.d1 import d1_correct, d1_gsm8k_answer, d1_math_answer
from igpo_kit.grading.official import extract_first_boxed, official_correct

__all__ = [
    "GradingTimeout",
    "MathGrader",
    "MathVerifyGrader",
    "D1Grader",
    "Gsm8kGrader",
    "OfficialGrader",
    "FormatGrader",
    "XmlCountGrader",
    "math",
    "math_verify",
    "d1",
    "warm_math_verify",
    "gsm8k",
    "official",
    "format",
    "xmlcount",
    "count_xml",
    "call_with_time_limit",
]


class GradingTimeout(Exception):
    """A grader ran out of its time budget on one answer (``score`` turns this into 0)."""


class _Expired(BaseException):
    """Raised by the SIGALRM handler; a BaseException so ``except Exception`` inside sympy/math-verify lets it pass."""


#: after a grading deadline, SIGALRM repeats this often until the grader gives up (see call_with_time_limit)
RETRY_S = 0.05


def call_with_time_limit(seconds: float | None, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` bounded by ``seconds`` of wall-clock time (float), raising :class:`GradingTimeout` when exceeded.

    Uses ``ITIMER_REAL``/SIGALRM, so the bound only applies in the main thread of the main interpreter; elsewhere
    (or with ``seconds`` None/<= 0) ``fn`` runs unbounded. Unlike math-verify's own ``signal.alarm`` timeouts it
    takes fractional seconds and restores an outer timer (e.g. pytest-timeout's) instead of cancelling it.
    Pure-Python work is interrupted between bytecodes; a long C call is not (the process pool kills such workers).
    """
    if (
        seconds is None
        or seconds <= 0
        or not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        return fn(*args)
    fired, inside = [False], [True]

    def _handler(signum, frame):  # noqa: ARG001
        if not inside[0]:  # fn is over: a late tick does nothing
            return
        fired[0] = True
        raise _Expired()

    old_handler = signal.signal(signal.SIGALRM, _handler)
    start = time.monotonic()
    # after the deadline the alarm repeats every RETRY_S: code inside sympy / math-verify that swallows one _Expired
    # (a bare ``except:``) gets the next one, so the bound holds instead of the work running on unbounded
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds, RETRY_S)
    result = None
    try:
        try:
            result = fn(*args)
        finally:
            inside[0] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Expired:
        pass  # fired[0] is set: raised below as GradingTimeout
    finally:
        inside[0] = False  # (again: a tick may have cut the inner finally short)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:  # re-arm the caller's timer with what is left of it
            left = old_delay - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-4), old_interval)
    if fired[0]:  # the deadline passed (whether or not something inside swallowed a tick)
        raise GradingTimeout(f"grading took longer than {seconds:g} s")
    return result


def _select_boxed(region: str, boxed: str) -> str | None:
    return extract.first_boxed(region) if boxed == "first" else extract.last_boxed(region)


def _check_boxed_option(boxed: str) -> None:
    if boxed not in ("first", "last"):
        raise ConfigError(f"boxed must be 'first' or 'last', got {boxed!r}")


# --- math-verify ------------------------------------------------------------------------------------------------


class _DropTimeoutDisabled(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:  # noqa: A003
        return "Timeout is disabled" not in str(record.msg)


_MV_STATE = {"ready": False}


def _math_verify_modules():
    """Import math-verify once (and silence its 'timeout disabled' warning: we bound time ourselves)."""
    import math_verify  # noqa: PLC0415

    if not _MV_STATE["ready"]:
        for name in ("math_verify.parser", "math_verify.grader"):
            logging.getLogger(name).addFilter(_DropTimeoutDisabled())
        _MV_STATE["ready"] = True
    return math_verify


_DELIMITED = re.compile(r"(?<!\\)\$|\\\(|\\\[|\\boxed")  # an unescaped $, \( , \[ or \boxed


def gold_latex(gold: str) -> str:
    """Gold answer as math-verify input: wrapped as ``$...$`` unless it already has LaTeX delimiters or a box.

    An escaped dollar (``\\$18.90``) is a currency sign, not a delimiter.
    """
    g = str(gold).strip()
    if _DELIMITED.search(g):
        return g
    return f"${extract.scientific_to_latex(g)}$"


@lru_cache(maxsize=4096)
def _parse_gold(gold: str):
    mv = _math_verify_modules()
    return mv.parse(gold_latex(gold), parsing_timeout=None)


#: LaTeX of the shapes answers take most (fraction, root, pi, text, tuple, complex, degrees, equation), parsed and
#: verified once per process before the pool forks. Measured (bench/grading.py, 1,600 answers): these 8 cost
#: ~0.4 s CPU and save about as much; 61 shapes cost ~1.5 s more and saved nothing measurable, because most of
#: ANTLR's time is full-context prediction that its DFA cache does not keep.
WARM_EXPRESSIONS: tuple[str, ...] = (
    "\\frac{3}{4}", "2\\sqrt{5}", "\\frac{\\pi}{6}", "\\text{east}", "(2, -5)", "-3 + 4i", "45^\\circ", "y = 3x + 1",
)


def warm_math_verify() -> None:
    """Import math-verify and parse + verify :data:`WARM_EXPRESSIONS` once in this process (idempotent).

    math-verify's ANTLR LaTeX parser builds its prediction tables lazily: the first answers of each shape cost up to
    tens of ms each. Warming before the pool forks makes every worker (and the in-process fast path) start warm.
    """
    if _MV_STATE.get("warm"):
        return
    mv = _math_verify_modules()
    n = len(WARM_EXPRESSIONS)
    for i, expr in enumerate(WARM_EXPRESSIONS):
        try:
            gold = mv.parse(f"${expr}$", parsing_timeout=None)
            pred = mv.parse(f"$\\boxed{{{WARM_EXPRESSIONS[(i * 7 + 3) % n]}}}$", parsing_timeout=None)
            mv.verify(gold, pred, timeout_seconds=None)
        except Exception:  # noqa: BLE001 - warming must never fail a run
            pass
    _MV_STATE["warm"] = True


_PLAIN_NUMBER = re.compile(r"^(-?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?$")


def _plain_decimal(text: str) -> tuple[Decimal, bool] | None:
    """(value, is_integer_literal) of a plain decimal literal (``-1,234.5``), else None."""
    m = _PLAIN_NUMBER.match(text.strip())
    if m is None:
        return None
    sign, digits, frac = m.groups()
    return Decimal(sign + digits.replace(",", "") + (frac or "")), frac is None


def _plain_number_decision(pred: str, gold: str) -> bool | None:
    """True/False when both are plain numbers and the outcome is certain; None = ask math-verify."""
    a = _plain_decimal(pred)
    if a is None:
        return None
    b = _plain_decimal(gold)
    if b is None:
        return None
    if a[0] == b[0]:
        return True
    if a[1] and b[1]:  # two different integers
        return False
    return None  # different decimals: math-verify's rounding decides


@dataclass(frozen=True)
class MathVerifyGrader:
    """Correctness with math-verify: the ``\\boxed{}`` of the answer region vs the gold (spec sec. 10; binary reward).

    The answer region is the text inside the last ``<answer>...</answer>`` (the whole completion if there is none);
    the prediction is its first or last ``\\boxed{}`` (``boxed``). Without a box the completion scores 0 when
    ``require_boxed`` (the default), else math-verify extracts from the region text. ``timeout_s`` bounds one
    answer (gold parse + prediction parse + verify) in the main thread; a timeout scores 0.

    ``fast_numeric``: when the prediction and the gold are both plain decimal numbers (``-1,234.50``; no LaTeX,
    units or signs other than a leading minus), decide without math-verify where the answer is certain: equal
    values are correct, different integers are wrong; anything else goes to math-verify. Same decisions, ~50x
    faster on GSM8K-style answers (the tests check agreement with math-verify).
    """

    name: ClassVar[str] = "math_verify"
    role: ClassVar[str] = "correctness"
    pure: ClassVar[bool] = False
    self_timed: ClassVar[bool] = True

    boxed: str = "last"
    require_boxed: bool = True
    correct_value: float = 1.0
    timeout_s: float = 5.0
    fast_numeric: bool = True

    @property
    def max_score(self) -> float:
        return self.correct_value

    def _answer(self, completion: str) -> tuple[str, bool] | None:
        """(answer text, is_boxed_content) or None if there is nothing to grade."""
        region = extract.answer_region(completion)
        content = _select_boxed(region, self.boxed)
        if content is None:
            if self.require_boxed or not region.strip():
                return None
            return region, False
        return (content, True) if content else None

    def answer(self, completion: str) -> str | None:
        """The answer text it grades (box content or the raw answer region), None if there is nothing to grade."""
        answer = self._answer(completion)
        return None if answer is None else answer[0]

    def prediction(self, completion: str) -> str | None:
        """The string handed to math-verify (``$\\boxed{...}$`` or the raw answer region), None if nothing to grade."""
        answer = self._answer(completion)
        if answer is None:
            return None
        text, is_boxed = answer
        return "$\\boxed{" + extract.scientific_to_latex(text) + "}$" if is_boxed else text

    def _correct(self, pred: str, gold: str) -> bool:
        mv = _math_verify_modules()
        gold_parsed = _parse_gold(str(gold))
        if not gold_parsed:
            return False
        pred_parsed = mv.parse(pred, parsing_timeout=None)
        if not pred_parsed:
            return False
        return bool(mv.verify(gold_parsed, pred_parsed, timeout_seconds=None))

    def quick_score(self, completion: str, gold: str) -> float | None:
        """The score when it is certain without math-verify (no answer; plain numbers, see ``fast_numeric``), else None.

        Pure string work in bounded time: :func:`~igpo_kit.grading.pool.grade_many` runs it in-process first and
        sends only the undecided answers to the worker processes.
        """
        answer = self._answer(completion)
        if answer is None:
            return 0.0
        if self.fast_numeric:
            decided = _plain_number_decision(answer[0], str(gold))
            if decided is not None:
                return self.correct_value if decided else 0.0
        return None

    def score_checked(self, completion: str, gold: str) -> float:
        quick = self.quick_score(completion, gold)
        if quick is not None:
            return quick
        pred = self.prediction(completion)
        ok = call_with_time_limit(self.timeout_s, self._correct, pred, gold)
        return self.correct_value if ok else 0.0

    def score(self, completion: str, gold: str) -> float:
        try:
            return self.score_checked(completion, gold)
        except GradingTimeout:
            return 0.0

    def prepare(self) -> None:
        """Import math-verify/sympy and run one comparison, so forked workers start warm."""
        mv = _math_verify_modules()
        mv.verify(mv.parse("$1$", parsing_timeout=None), mv.parse("$\\boxed{1}$", parsing_timeout=None), timeout_seconds=None)


def math_verify(
    boxed: str = "last",
    require_boxed: bool = True,
    correct_value: float = 1.0,
    timeout_s: float = 5.0,
    fast_numeric: bool = True,
) -> MathVerifyGrader:
    """Binary correctness with math-verify on the boxed answer (default correctness grader).

    boxed: which ``\\boxed{}`` of the answer region counts, "last" (default) or "first" (the released code).
    require_boxed: score 0 when there is no box (True) or let math-verify read the answer region (False).
    correct_value: reward of a correct answer (1.0 = the paper's binary reward; 3.0 = the released scale).
    timeout_s: time bound for one answer in the main thread (the pool bounds wall-clock time from outside).
    fast_numeric: decide plain-number pairs (GSM8K) without math-verify where the outcome is certain.
    """
    _check_boxed_option(boxed)
    return MathVerifyGrader(
        boxed=boxed,
        require_boxed=require_boxed,
        correct_value=float(correct_value),
        timeout_s=float(timeout_s),
        fast_numeric=fast_numeric,
    )


# --- math: the default correctness grader (shared extractor + fast paths + math-verify + numeric fallback) ----

_SPACES = re.compile(r"\\s+|\\[,;!: ]|\\left|\\right")
_INT_FRACTION = re.compile(r"\\[dt]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(-?\d+)\s*\}|(?<![\d.])(-?\d+)\s*/\s*(\d+)(?![\d.])")


_TEXT_WRAP = re.compile(r"^\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}$")


def _canonical(text: str) -> str:
    """Spacing, ``\\left``/``\\right`` and a whole-answer ``\\text{}`` removed, ``\\dfrac`` -> ``\\frac`` (exact matches)."""
    t = _SPACES.sub("", text).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").strip("$")
    m = _TEXT_WRAP.match(t)
    return m.group(1) if m is not None else t


_WORDS = re.compile(r"^[A-Za-z][A-Za-z ]*$")
_CLOCK_TIME = re.compile(r"^\d{1,2}:\d{2}\b")
_BARE_LETTER = re.compile(r"(?<![\\A-Za-z])[A-Za-z]")  # a letter not inside a \\command (a variable; e is not one)
_STRUCTURED = re.compile(r"^\s*(?:\\left)?\s*[(\[]|\\begin\{|,")


def _shape_decision(pred: str, gold: str) -> bool | None:
    """Certain verdicts from the answers' shapes, without parsing them.

    A gold of plain words (``\\text{east}``): correct iff the answer's letters are those words (ignoring case and
    ``\\text{}``, brackets). A clock time (``2:30 pm``) against a plain number: wrong. A single number against a
    gold that is a tuple, interval, list or matrix, or an expression in variables (``x^2 + 1``, ``p - q``; no
    ``=``, ``\\text`` or units in it): wrong. Anything else: None (math-verify decides).
    """
    p, g = _canonical(pred), _canonical(gold)
    if _WORDS.match(g):
        return re.sub(r"[^a-z ]", "", p.lower()).strip() == g.lower().strip()
    if _CLOCK_TIME.match(pred.strip()) and _plain_decimal(gold) is not None:
        return False
    if extract.parse_number(pred) is None or "=" in gold or "\\text" in gold or "\\mbox" in gold:
        return None
    if _STRUCTURED.search(gold) or _BARE_LETTER.search(gold.replace("e", "")):
        return False
    return None


def _gold_number(gold: str) -> float | None:
    """The gold's value if it is one number (after ``####`` if present); ``1,2`` (a list) is not ``12``."""
    return extract.parse_number(gold.split("####")[-1] if "####" in gold else gold)


def _numeric_decision(pred: str, gold: str) -> bool | None:
    """True/False when both sides are one number (``$``, commas, ``\\frac{a}{b}``, ``a/b``) and the outcome is certain.

    Equal values (relative 1e-9) are correct; integer values that differ, or values further apart than math-verify's
    rounding could bridge (relative 1e-4), are wrong; anything else (and any ``%``) is left to math-verify.
    """
    if "%" in pred or "%" in gold:
        return None
    a = extract.parse_number(pred)
    if a is None:
        return None
    b = _gold_number(gold)
    if b is None:
        return None
    if _math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12):
        return True
    if (a.is_integer() and b.is_integer()) or abs(a - b) > 1e-4 * max(1.0, abs(a), abs(b)):
        return False
    return None


def has_unreduced_fraction(text: str) -> bool:
    """True if ``text`` holds an integer fraction with a common factor (``\\frac{3}{24}``, ``6/8``)."""
    for m in _INT_FRACTION.finditer(text):
        a, b = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(3), m.group(4))
        if int(b) != 0 and _math.gcd(int(a), int(b)) > 1:
            return True
    return False


@dataclass(frozen=True)
class MathGrader:
    """Correctness = the shared extractor's answer vs the gold, decided by the cheapest certain test (spec sec. 10).

    Order: no answer -> 0; ``reduced_fractions`` check; identical after spacing/``\\dfrac``/``\\text{}`` normalisation ->
    correct; one number each (``fast_numeric``: plain decimals, ``$``, commas, ``\\frac{a}{b}``; equal values correct,
    different integers or clearly different values wrong); else math-verify (gold vs
    ``\\boxed{answer}``, bounded by ``timeout_s`` in the main thread); if math-verify says no, the numeric fallback:
    both sides one number (``$``, ``%``, commas, ``\\frac{a}{b}``, units dropped) equal within ``tolerance``.
    """

    name: ClassVar[str] = "math"
    role: ClassVar[str] = "correctness"
    pure: ClassVar[bool] = False
    self_timed: ClassVar[bool] = True

    boxed: str = "last"
    reduced_fractions: bool = False
    correct_value: float = 1.0
    timeout_s: float = 5.0
    fast_numeric: bool = True
    tolerance: float = 1e-6

    @property
    def max_score(self) -> float:
        return self.correct_value

    def answer(self, completion: str) -> extract.Answer | None:
        return extract.extract_answer(completion, self.boxed)

    def _quick(self, pred: str, gold: str) -> bool | None:
        if self.reduced_fractions and ("frac" in gold or "/" in gold) and has_unreduced_fraction(pred):
            return False
        if _canonical(pred) == _canonical(gold):
            return True
        if self.fast_numeric:
            for decide in (_plain_number_decision, _numeric_decision, _shape_decision):
                decided = decide(pred, gold)
                if decided is not None:
                    return decided
        return None

    def quick_score(self, completion: str, gold: str) -> float | None:
        """The score when cheap string work is certain (no answer, identical text, one number each), else None."""
        ans = self.answer(completion)
        if ans is None:
            return 0.0
        decided = self._quick(ans.text, str(gold).strip())
        if decided is None:
            return None
        return self.correct_value if decided else 0.0

    def _correct(self, pred: str, gold: str) -> bool:
        mv = _math_verify_modules()
        gold_parsed = _parse_gold(gold)
        if gold_parsed:
            pred_parsed = mv.parse("$\\boxed{" + extract.scientific_to_latex(pred) + "}$", parsing_timeout=None)
            if pred_parsed and mv.verify(gold_parsed, pred_parsed, timeout_seconds=None):
                return True
        a, b = extract.parse_number(pred), _gold_number(gold)
        return a is not None and b is not None and _math.isclose(a, b, rel_tol=self.tolerance, abs_tol=self.tolerance)

    def score_checked(self, completion: str, gold: str) -> float:
        ans = self.answer(completion)
        if ans is None:
            return 0.0
        gold = str(gold).strip()
        decided = self._quick(ans.text, gold)
        if decided is None:
            decided = call_with_time_limit(self.timeout_s, self._correct, ans.text, gold)
        return self.correct_value if decided else 0.0

    def score(self, completion: str, gold: str) -> float:
        try:
            return self.score_checked(completion, gold)
        except GradingTimeout:
            return 0.0

    def prepare(self) -> None:
        """Import math-verify and warm its LaTeX parser (see :func:`warm_math_verify`), so forked workers start warm."""
        warm_math_verify()


def math(  # noqa: A001 - the registry name
    boxed: str = "last",
    reduced_fractions: bool = False,
    correct_value: float = 1.0,
    timeout_s: float = 5.0,
    fast_numeric: bool = True,
    tolerance: float = 1e-6,
) -> MathGrader:
    """Default correctness grader: shared answer extractor + math-verify with fast paths and a numeric fallback.

    boxed: which box of the answer region counts, "last" (default) or "first".
    reduced_fractions: when True, an answer holding an unreduced integer fraction (``\\frac{3}{24}``, ``6/8``) is
    wrong whenever the gold is written as a fraction, even if equal in value (MATH's "express your answer as a
    common fraction"); False (default) accepts any equal value, as math-verify does.
    correct_value: reward of a correct answer (1.0 = the paper's binary reward; 3.0 = the released scale).
    timeout_s: time bound for one answer in the main thread (the pool bounds wall-clock time from outside).
    fast_numeric: decide plain-number pairs without math-verify where the outcome is certain.
    tolerance: absolute and relative tolerance of the numeric fallback.
    """
    _check_boxed_option(boxed)
    return MathGrader(boxed=boxed, reduced_fractions=bool(reduced_fractions), correct_value=float(correct_value),
                      timeout_s=float(timeout_s), fast_numeric=fast_numeric, tolerance=float(tolerance))


# --- GSM8K numeric ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gsm8kGrader:
    """Numeric correctness: the number of the extracted answer (shared extractor, rules below) vs the gold number.

    Commas, signs, ``$``, ``%``, units and ``18.0`` vs ``18`` are handled; a gold with ``####`` (a raw GSM8K
    solution) is reduced to the text after it. Equal within ``tolerance`` (absolute and relative). The answer is
    found by :func:`igpo_kit.grading.extract.extract_answer`; its value is the answer if it is one number
    (``\\frac{a}{b}`` and ``a/b`` included), else its last number.
    """

    name: ClassVar[str] = "gsm8k"
    role: ClassVar[str] = "correctness"
    pure: ClassVar[bool] = True
    self_timed: ClassVar[bool] = False

    boxed: str = "last"
    require_boxed: bool = False
    tolerance: float = 1e-6
    correct_value: float = 1.0

    @property
    def max_score(self) -> float:
        return self.correct_value

    def answer(self, completion: str) -> extract.Answer | None:
        """The extracted answer (None if there is none, or it is unboxed while ``require_boxed``)."""
        ans = extract.extract_answer(completion, self.boxed)
        if ans is None or (self.require_boxed and not ans.boxed):
            return None
        return ans

    def prediction(self, completion: str) -> float | None:
        ans = self.answer(completion)
        return None if ans is None else extract.last_number(ans.text)

    def score(self, completion: str, gold: str) -> float:
        pred = self.prediction(completion)
        if pred is None:
            return 0.0
        gold_text = extract.gsm8k_gold(str(gold))
        target = extract.parse_number(gold_text)
        if target is None:
            target = extract.last_number(gold_text)
        if target is None:
            return 0.0
        ok = _math.isclose(pred, target, rel_tol=self.tolerance, abs_tol=self.tolerance)
        return self.correct_value if ok else 0.0


def gsm8k(
    boxed: str = "last",
    require_boxed: bool = False,
    tolerance: float = 1e-6,
    correct_value: float = 1.0,
) -> Gsm8kGrader:
    """Numeric GSM8K correctness with the shared answer extractor (pure Python, no math-verify, fast).

    boxed: "last" or "first" box of the answer region. require_boxed: score 0 when the answer is not boxed
    (True) or read unboxed answers too (False). tolerance: absolute and relative tolerance of the comparison.
    """
    _check_boxed_option(boxed)
    return Gsm8kGrader(boxed=boxed, require_boxed=require_boxed, tolerance=float(tolerance), correct_value=float(correct_value))


# --- official (released code) -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfficialGrader:
    """The released ``correctness_reward_func``: first ``\\boxed{}``, Hendrycks ``strip_string``, string equality.

    Scores ``correct_value`` (3.0) or 0.0 (spec sec. 7.1, sec. 13 item 19). Known defects kept on purpose: the first
    box wins, a box is mandatory, ``18.0 != 18`` (see :mod:`igpo_kit.grading.official`).
    """

    name: ClassVar[str] = "official"
    role: ClassVar[str] = "correctness"
    pure: ClassVar[bool] = True
    self_timed: ClassVar[bool] = False

    correct_value: float = 3.0

    @property
    def max_score(self) -> float:
        return self.correct_value

    def answer(self, completion: str) -> str:
        """The first box's content it compares (``""`` when there is none)."""
        return extract_first_boxed(completion)

    def score(self, completion: str, gold: str) -> float:
        return self.correct_value if official_correct(completion, str(gold)) else 0.0


def official(correct_value: float = 3.0) -> OfficialGrader:
    """Faithful reproduction of the released IGPO correctness reward (3.0 if equivalent, else 0.0)."""
    return OfficialGrader(correct_value=float(correct_value))


# --- d1 (reference parser) ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class D1Grader:
    """d1's published evaluation parser (a reference baseline; see :mod:`igpo_kit.grading.d1`): 1.0 or 0.0."""

    name: ClassVar[str] = "d1"
    role: ClassVar[str] = "correctness"
    pure: ClassVar[bool] = True
    self_timed: ClassVar[bool] = False

    task: str = "auto"
    correct_value: float = 1.0

    @property
    def max_score(self) -> float:
        return self.correct_value

    def answer(self, completion: str) -> str | None:
        """What it compares: the GSM8K path's number, or the MATH path's string (``task`` "auto": the number)."""
        if self.task == "math":
            return d1_math_answer(completion)
        value = d1_gsm8k_answer(completion)
        return None if value is None else repr(value)

    def score(self, completion: str, gold: str) -> float:
        return self.correct_value if d1_correct(completion, str(gold), self.task) else 0.0


def d1(task: str = "auto", correct_value: float = 1.0) -> D1Grader:
    """d1's evaluation parser, reproduced as the reference to compare graders against (not meant for training).

    task: "gsm8k" (numbers: first box, first number), "math" (last box, Hendrycks is_equiv) or "auto" (the GSM8K
    path when the gold is a plain number, else the MATH path).
    """
    if task not in ("auto", "gsm8k", "math"):
        raise ConfigError(f"task must be 'auto', 'gsm8k' or 'math', got {task!r}")
    return D1Grader(task=task, correct_value=float(correct_value))


# --- format rewards ---------------------------------------------------------------------------------------------

_TAGS = ("<reasoning>", "</reasoning>", "<answer>", "</answer>")


@dataclass(frozen=True)
class FormatGrader:
    """``weight`` if the completion is ``<reasoning>...</reasoning> <answer>...</answer>``, else 0.

    Well-formed = each of the four tags exactly once, in that order, only whitespace before ``<reasoning>`` and
    between ``</reasoning>`` and ``<answer>``, and (``require_boxed``) a balanced ``\\boxed{}`` inside the answer.
    Text after ``</answer>`` is ignored (EOS/padding). ``prefill`` is prepended first: use ``"<reasoning>"`` when
    the prompt prefilled it (d1 evaluation), since the completion then starts inside the reasoning.
    """

    name: ClassVar[str] = "format"
    role: ClassVar[str] = "format"
    pure: ClassVar[bool] = True
    self_timed: ClassVar[bool] = False

    weight: float = 1.0
    require_boxed: bool = True
    prefill: str = ""

    @property
    def max_score(self) -> float:
        return self.weight

    def well_formed(self, completion: str) -> bool:
        text = self.prefill + completion
        if any(text.count(tag) != 1 for tag in _TAGS):
            return False
        r0, r1, a0, a1 = (text.index(tag) for tag in _TAGS)
        if not (r0 < r1 < a0 < a1):
            return False
        if text[:r0].strip() or text[r1 + len("</reasoning>") : a0].strip():
            return False
        if self.require_boxed and extract.first_boxed(text[a0 + len("<answer>") : a1]) is None:
            return False
        return True

    def score(self, completion: str, gold: str = "") -> float:  # noqa: ARG002
        return self.weight if self.well_formed(completion) else 0.0


def format(weight: float = 1.0, require_boxed: bool = True, prefill: str = "") -> FormatGrader:  # noqa: A001
    """Format reward: ``weight`` for a well-formed ``<reasoning>``/``<answer>`` completion with a boxed answer."""
    return FormatGrader(weight=float(weight), require_boxed=require_boxed, prefill=prefill)


_BOXED_OPEN = re.compile(r"\\boxed\{")


def count_xml(text: str) -> float:
    """The released ``count_xml`` (spec sec. 7.1): +0.125 per tag present exactly once, +0.25 for ``\\boxed{``."""
    count = 0.0
    if text.count("<reasoning>\n") == 1:
        count += 0.125
    if text.count("</reasoning>") == 1:
        count += 0.125
    if text.count("<answer>\n") == 1:
        count += 0.125
    if text.count("</answer>") == 1:
        count += 0.125
    if _BOXED_OPEN.search(text):
        count += 0.25
    return count


@dataclass(frozen=True)
class XmlCountGrader:
    """The released ``xmlcount_reward_func`` times ``weight``: values in ``{0, 0.125, ..., 0.75}`` for weight 1."""

    name: ClassVar[str] = "xmlcount"
    role: ClassVar[str] = "format"
    pure: ClassVar[bool] = True
    self_timed: ClassVar[bool] = False

    weight: float = 1.0

    @property
    def max_score(self) -> float:
        return 0.75 * self.weight

    def score(self, completion: str, gold: str = "") -> float:  # noqa: ARG002
        return self.weight * count_xml(completion)


def xmlcount(weight: float = 1.0) -> XmlCountGrader:
    """The official xmlcount format reward (range {0, .125, ..., .75} times ``weight``)."""
    return XmlCountGrader(weight=float(weight))


def _rules_doc() -> str:
    return "\n\nAnswer extraction (igpo_kit.grading.extract.extract_answer), rules in order:\n" + "\n".join(
        f"  - {rule}" for rule in extract.RULES
    )


for _factory in (math, gsm8k):  # ``igpo-kit describe grader math`` lists the extraction rules
    _factory.__doc__ = (_factory.__doc__ or "") + _rules_doc()
