"""Answer extraction: answer regions, ``\\boxed{}`` contents, GSM8K golds, number normalisation.

Everything here is pure string processing in (near) linear time: no math-verify, no sympy, safe in any thread.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

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


# --- the shared answer extractor (every grader but the faithful reproductions ``official`` and ``d1``) -----------

#: The extraction rules, in the order they are tried; listed by ``igpo-kit describe grader math`` (and gsm8k).
RULES: tuple[str, ...] = (
    "padding: end-of-text/special tokens (<|endoftext|>, <|eot_id|>, <|im_end|>, </s>, <eos>, <pad>) are removed",
    "regions: each <answer> opens a region that ends at the next </answer>, a broken closing tag (</<answer>, "
    "</answer without '>', </ answer>), the next <answer> or the end of the text; empty regions are skipped",
    "boxes: \\boxed{..}, \\fbox{..} and a box without its backslash (boxed{27}); an unclosed box (\\boxed{78 then "
    "a newline or </answer>) ends at the end of its line; empty boxes (\\boxed{}) and '...' are skipped",
    "1. the last box inside the last answer region holding one (the first with boxed='first')",
    "2. else the last box after the last answer region opened (a box after </answer>)",
    "3. else the text of the last non-empty answer region (an unboxed answer; an empty box in it is dropped: "
    "\\boxed{}32 -> 32)",
    "4. else the last box anywhere (a completion without tags)",
    "5. else the text after the last 'answer is', 'Answer:' or '####' when it is short (<= 40 characters on its "
    "line) and the completion was not cut inside <reasoning> (a completion without tags or box)",
    "6. else nothing: a truncated completion without an answer scores 0 (no number is guessed from the reasoning)",
    "cleaning: a leading 'The answer is' / 'Answer:' and a final '.' are dropped; a number followed by plain words or units is that number (20 white hats -> 20, 5 changes/day -> 5, "
    "60 \\text{ tickets} -> 60); a whole-hour clock time is its hour (2:00 pm -> 2); \\text{east} stays text",
)

_SPECIAL_TOKEN_RE = re.compile(r"<\|[A-Za-z0-9_ ]{1,40}\|>|</s>|<s>|<eos>|<pad>|<\|?mask\|?>", re.IGNORECASE)
# close first so that ``</<answer>`` (a broken close) is not read as an opening ``<answer>``
_TAG_RE = re.compile(r"(?P<close><\s*/\s*<?\s*answer\s*>?)|(?P<open><\s*answer\s*>)", re.IGNORECASE)
_ANY_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{|(?<![A-Za-z\\])boxed\s*\{")
_PLACEHOLDER_RE = re.compile(r"^\s*(?:\.{2,}|\\ldots|\\dots|\?+)?\s*$")
_EMPTY_BOX_RE = re.compile(r"\\?(?:boxed|fbox)\s*\{\s*(?:\.{2,}|\\ldots|\\dots|\?+)?\s*\}")
_PHRASE_TAIL_CHARS = 40  # a phrase's answer is short ("#### 18", "The answer is 3/4."), not a sentence of reasoning
_PHRASE_RE = re.compile(r"(?:answer\s+is|answer\s*:|####)\s*:?\s*", re.IGNORECASE)


def strip_special_tokens(text: str) -> str:
    """``text`` without end-of-text/padding tokens (``<|endoftext|>``, ``<|eot_id|>``, ``</s>``, ``<eos>``, ...)."""
    return _SPECIAL_TOKEN_RE.sub("", text)


def answer_regions(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` spans of every ``<answer>`` region (see :data:`RULES`), empty ones included, in order."""
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for m in _TAG_RE.finditer(text):
        if start is not None:
            spans.append((start, m.start()))
            start = None
        if m.group("open") is not None:
            start = m.end()
    if start is not None:
        spans.append((start, len(text)))
    return spans


def find_boxes(text: str) -> list[tuple[int, str]]:
    """``(position, content)`` of every non-empty box in ``text`` (rules: :data:`RULES`, "boxes"), in order."""
    out: list[tuple[int, str]] = []
    for m in _ANY_BOX_RE.finditer(text):
        open_idx = m.end() - 1
        close = match_brace(text, open_idx)
        if close is None:  # unclosed: the rest of its line
            end = text.find("\n", open_idx)
            content = text[open_idx + 1 : end if end >= 0 else len(text)]
        else:
            content = text[open_idx + 1 : close]
        content = content.strip()
        if content and not _PLACEHOLDER_RE.match(content):
            out.append((m.start(), content))
    return out


@dataclass(frozen=True)
class Answer:
    """An extracted answer: ``text`` (cleaned, see :func:`clean_answer`), ``raw`` as written, the ``rule`` that found it."""

    text: str
    raw: str
    rule: str
    boxed: bool


def extract_answer(completion: str, boxed: str = "last") -> Answer | None:
    """The final answer of a completion by the rules of :data:`RULES` (tried in order), None if there is none.

    ``boxed``: "last" (default) or "first" box of the answer region (rule 1).
    """
    text = strip_special_tokens(completion)
    regions = [(s, e) for s, e in answer_regions(text) if text[s:e].strip()]
    boxes = find_boxes(text)

    def pick(found: list[tuple[int, str]]) -> str:
        return found[0][1] if boxed == "first" else found[-1][1]

    for s, e in reversed(regions):  # 1. a box inside an answer region (the last region holding one)
        inside = [b for b in boxes if s <= b[0] < e]
        if inside:
            return _answer(pick(inside), "box in answer region", True)
    last_open = text.lower().rfind("<answer>")
    if last_open >= 0:  # 2. a box after the last answer region opened
        after = [b for b in boxes if b[0] > last_open]
        if after:
            return _answer(pick(after), "box after answer region", True)
    for s, e in reversed(regions):  # 3. an unboxed answer region
        region = _EMPTY_BOX_RE.sub(" ", text[s:e]).strip()
        if region:
            return _answer(region, "answer region text", False)
    if boxes:  # 4. a box anywhere
        return _answer(pick(boxes), "box outside answer tags", True)
    if _cut_in_reasoning(text):  # 6. truncated inside the reasoning: no phrase is trusted
        return None
    phrases = list(_PHRASE_RE.finditer(text))  # 5. "the answer is ..."
    if phrases:
        tail = text[phrases[-1].end() :].strip().split("\n", 1)[0].strip().rstrip(".").strip()
        if tail and len(tail) <= _PHRASE_TAIL_CHARS:
            return _answer(tail, "'answer is' phrase", False)
    return None


def _cut_in_reasoning(text: str) -> bool:
    """True when ``<reasoning>`` was opened and never closed (and no answer region followed): a cut-off generation."""
    low = text.lower()
    return "<reasoning>" in low and "</reasoning>" not in low and "<answer>" not in low


def _answer(raw: str, rule: str, is_box: bool) -> Answer:
    return Answer(text=clean_answer(raw), raw=raw, rule=rule, boxed=is_box)


_NUMBER_TEXT = r"[-+]?\\?\$?\s*(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\\?%)?"
_UNIT_WORD = r"(?:[A-Za-z][A-Za-z'.\-]*(?:/[A-Za-z]+)?(?:\^\d)?)"
_WORDS_AFTER_NUMBER = re.compile(
    rf"^({_NUMBER_TEXT})\s*(?:\\(?:text|mbox|mathrm|textbf)\s*\{{[^{{}}]*\}}|{_UNIT_WORD}(?:\s+{_UNIT_WORD})*)[\s.]*$"
)
_LEAD_PHRASE = re.compile(r"^(?:so,?\s+|thus,?\s+|therefore,?\s+)?(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)\s*:?\s*", re.IGNORECASE)
_CLOCK_RE = re.compile(r"^(\d{1,2}):00\s*(?:[ap]\.?\s*m\.?)?$", re.IGNORECASE)


def clean_answer(raw: str) -> str:
    """The answer text graders compare (rules: :data:`RULES`, "cleaning"); other text is returned stripped.

    ``"20 white hats"`` -> ``"20"``, ``"5 changes/day"`` -> ``"5"``, ``"2:00 pm"`` -> ``"2"``, ``"\\text{east}"`` ->
    unchanged, ``"x^2 + 1"`` -> unchanged (single letters are variables, not units).
    """
    t = raw.strip()
    t = _LEAD_PHRASE.sub("", t, count=1).strip()
    if t.endswith("."):
        t = t[:-1].rstrip()
    m = _CLOCK_RE.match(t)
    if m is not None:
        return m.group(1)
    m = _WORDS_AFTER_NUMBER.match(t)
    if m is not None and _has_word(t[m.end(1) :]):
        return m.group(1).replace(" ", "")
    return t


def _has_word(rest: str) -> bool:
    """True if ``rest`` holds a word of >= 2 letters (a unit), not just a single-letter variable like ``x``."""
    return re.search(r"[A-Za-z]{2,}", rest) is not None
