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
import math
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
from igpo_kit.grading.official import official_correct

__all__ = [
    "GradingTimeout",
    "MathVerifyGrader",
    "Gsm8kGrader",
    "OfficialGrader",
    "FormatGrader",
    "XmlCountGrader",
    "math_verify",
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
    fired = [False]

    def _handler(signum, frame):  # noqa: ARG001
        fired[0] = True
        raise _Expired()

    old_handler = signal.signal(signal.SIGALRM, _handler)
    start = time.monotonic()
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        try:
            try:
                result = fn(*args)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Expired:
            raise GradingTimeout(f"grading took longer than {seconds:g} s") from None
    finally:
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:  # re-arm the caller's timer with what is left of it
            left = old_delay - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-4), old_interval)
    if fired[0]:  # the alarm fired but something inside swallowed _Expired
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


# --- GSM8K numeric ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gsm8kGrader:
    """Numeric correctness: the last number of the boxed answer (or of the answer region) vs the gold number.

    Commas, signs, ``$``, ``%``, units and ``18.0`` vs ``18`` are handled; a gold with ``####`` (a raw GSM8K
    solution) is reduced to the text after it. Equal within ``tolerance`` (absolute and relative).
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

    def prediction(self, completion: str) -> float | None:
        region = extract.answer_region(completion)
        content = _select_boxed(region, self.boxed)
        if content is None:
            if self.require_boxed:
                return None
            content = region
        return extract.last_number(content)

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
        ok = math.isclose(pred, target, rel_tol=self.tolerance, abs_tol=self.tolerance)
        return self.correct_value if ok else 0.0


def gsm8k(
    boxed: str = "last",
    require_boxed: bool = False,
    tolerance: float = 1e-6,
    correct_value: float = 1.0,
) -> Gsm8kGrader:
    """Numeric GSM8K correctness (d1-style evaluation, without math-verify; pure Python, fast).

    boxed: "last" or "first" box of the answer region. require_boxed: without a box, score 0 (True) or take the
    last number of the answer region (False). tolerance: absolute and relative tolerance of the comparison.
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

    def score(self, completion: str, gold: str) -> float:
        return self.correct_value if official_correct(completion, str(gold)) else 0.0


def official(correct_value: float = 3.0) -> OfficialGrader:
    """Faithful reproduction of the released IGPO correctness reward (3.0 if equivalent, else 0.0)."""
    return OfficialGrader(correct_value=float(correct_value))


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
