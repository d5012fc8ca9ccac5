"""Answer extraction: answer regions, ``\\boxed{}`` contents, GSM8K golds, number normalisation.

Everything here is pure string processing in (near) linear time: no math-verify, no sympy, safe in any thread.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "answer_region",
    "first_boxed",
    "last_boxed",
    "boxed_contents",
    "gsm8k_gold",
    "strip_calculator_annotations",
    "normalize_number",
    "parse_number",
    "last_number",
    "numbers_in",
    "format_number",
    "scientific_to_latex",
]

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")


def answer_region(completion: str) -> str:
    """The text inside the last ``<answer>...</answer>`` of ``completion``, else the whole text.

    An opening ``<answer>`` without a closing tag (a generation cut off at its length budget) gives the text after
    the last ``<answer>``. The result is not stripped.
    """
    matches = _ANSWER_RE.findall(completion)
    if matches:
        return matches[-1]
    idx = completion.rfind("<answer>")
    if idx >= 0:
        return completion[idx + len("<answer>") :]
    return completion


def match_brace(text: str, open_idx: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at ``open_idx`` (LaTeX escapes ``\\{ \\}`` skipped), None if unbalanced."""
    depth = 0
    i = open_idx
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2  # skip the escaped character (\{, \}, \\ ...)
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def boxed_contents(text: str) -> list[str | None]:
    """Contents of every ``\\boxed{...}`` (and ``\\fbox{...}``) in order; ``None`` for an unbalanced one."""
    out: list[str | None] = []
    for m in _BOXED_RE.finditer(text):
        open_idx = m.end() - 1
        close = match_brace(text, open_idx)
        out.append(None if close is None else text[open_idx + 1 : close].strip())
    return out


def first_boxed(text: str) -> str | None:
    """Content of the first ``\\boxed{...}`` with brace matching (stripped); None if there is none or it is unbalanced."""
    m = _BOXED_RE.search(text)
    if m is None:
        return None
    open_idx = m.end() - 1
    close = match_brace(text, open_idx)
    return None if close is None else text[open_idx + 1 : close].strip()


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` with brace matching (stripped); None if there is none or it is unbalanced."""
    last = None
    for last in _BOXED_RE.finditer(text):
        pass
    if last is None:
        return None
    open_idx = last.end() - 1
    close = match_brace(text, open_idx)
    return None if close is None else text[open_idx + 1 : close].strip()


_CALC_RE = re.compile(r"<<[^<>]*>>")


def strip_calculator_annotations(text: str) -> str:
    """Remove GSM8K calculator annotations: ``"9 * 2 = $<<9*2=18>>18"`` -> ``"9 * 2 = $18"``."""
    return _CALC_RE.sub("", text)


def gsm8k_gold(answer_field: str) -> str:
    """The GSM8K gold answer: the text after ``####`` with commas removed, stripped (``"#### 1,234"`` -> ``"1234"``).

    If ``####`` is absent the whole field is used (same normalisation).
    """
    text = answer_field.split("####")[-1] if "####" in answer_field else answer_field
    return text.replace(",", "").strip()


# --- numbers ----------------------------------------------------------------------------------------------------

# A number: optional sign, digits with optional thousands separators, optional decimals, optional exponent.
_NUM_RE = re.compile(
    r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\d])"
    r"|(?<![\w.])[-+]?\.\d+(?![\d])"
)
_FRAC_RE = re.compile(r"^(-?)\\[dt]?frac\s*\{\s*(-?[\d.,]+)\s*\}\s*\{\s*(-?[\d.,]+)\s*\}$")
_SLASH_RE = re.compile(r"^(-?[\d.,]+)\s*/\s*(-?[\d.,]+)$")
_MINUS_CHARS = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2014": "-"})


def _clean_number_text(text: str) -> str:
    t = text.translate(_MINUS_CHARS).strip()
    t = t.replace("\\$", "").replace("$", "").replace("\\!", "").replace("\\,", "").replace("{,}", ",")
    t = t.replace("\\%", "").replace("%", "")
    t = re.sub(r"\\text\{\s*[^{}]*\}", " ", t)  # units: 5 \text{ dollars}
    t = re.sub(r"\\(?:mathrm|mbox)\{[^{}]*\}", " ", t)
    t = t.replace("^\\circ", "").replace("^{\\circ}", "")
    return t.strip()


def numbers_in(text: str) -> list[str]:
    """All number literals in ``text`` in order, as written (``"1,234"``, ``"-3"``, ``"2.5e3"``, ``".5"``)."""
    return [m.group(0) for m in _NUM_RE.finditer(text.translate(_MINUS_CHARS))]


def parse_number(text: str) -> float | None:
    """The value of ``text`` if it is one number (commas, sign, ``$``/``%``/units, ``\\frac{a}{b}``, ``a/b``), else None.

    ``"1,234"`` -> 1234.0, ``"-3"`` -> -3.0, ``"18.0"`` -> 18.0, ``"\\frac{3}{4}"`` -> 0.75, ``"$70,000"`` -> 70000.0.
    """
    t = _clean_number_text(text)
    if not t:
        return None
    m = _FRAC_RE.match(t) or _SLASH_RE.match(t)
    if m is not None:
        groups = m.groups()
        sign = -1.0 if len(groups) == 3 and groups[0] == "-" else 1.0
        num, den = _to_float(groups[-2]), _to_float(groups[-1])
        if num is None or den is None or den == 0:
            return None
        return sign * num / den
    return _to_float(t)


def _to_float(t: str) -> float | None:
    t = t.strip()
    if re.fullmatch(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", t):
        t = t.replace(",", "")
    if not re.fullmatch(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?", t):
        return None
    value = float(t)
    return value if math.isfinite(value) else None


def last_number(text: str) -> float | None:
    """Value of ``text`` if it is a single number/fraction (see :func:`parse_number`), else its last number literal."""
    whole = parse_number(text)
    if whole is not None:
        return whole
    nums = numbers_in(text)
    for tok in reversed(nums):
        value = _to_float(tok)
        if value is not None:
            return value
    return None


def normalize_number(text: str) -> str | None:
    """Canonical string of a single number (``"1,234.50"`` -> ``"1234.5"``, ``"18.0"`` -> ``"18"``), None if not a number."""
    value = parse_number(text)
    return None if value is None else format_number(value)


def format_number(value: float | int) -> str:
    """``142.0`` -> ``"142"``, ``0.5`` -> ``"0.5"``, ``-3`` -> ``"-3"`` (integers without a trailing ``.0``)."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value) and float(value).is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(float(value))


_SCI_RE = re.compile(r"^([-+]?\d+(?:\.\d+)?)\s*[eE]\s*([-+]?\d+)$")


def scientific_to_latex(text: str) -> str:
    """``"4.5e33"`` -> ``"4.5 \\times 10^{33}"`` (math-verify reads ``e`` as Euler's number); other text unchanged."""
    m = _SCI_RE.match(text.strip())
    if m is None:
        return text
    mantissa, exponent = m.groups()
    return f"{mantissa} \\times 10^{{{int(exponent)}}}"
