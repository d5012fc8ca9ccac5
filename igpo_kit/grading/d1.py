"""d1's evaluation parser, reproduced as a reference baseline for the ``d1`` grader (not for training rewards).

The parser published with d1's evaluation scripts (the "reference parser" of issue #12's measurements), in two
paths:

* **GSM8K** (numbers): the first non-empty ``\\boxed{...}`` (non-greedy regex ``\\\\boxed{(.*?)}``, so nested
  braces are cut) that is not ``...``; its float value, else the float of its **first** number (``-?\\d+\\.?\\d*``,
  so ``6,277`` reads ``6``). Without a usable box: the **first** ``<answer>...</answer>`` region, its float value or
  its **last** number. Correct iff that float equals the gold float.
* **MATH** (strings): Hendrycks ``last_boxed_only_string`` + ``remove_boxed`` on the whole completion, else the
  first ``<answer>`` region, then ``is_equiv`` (``strip_string`` normalisation, string equality).

Known limits kept on purpose: units after the number are dropped but thousands separators break it; unclosed or
unslashed boxes, an empty first ``<answer>`` region and broken closing tags are not recovered.
"""

from __future__ import annotations

import re

from igpo_kit.grading.official import _last_boxed_only_string, _remove_boxed, is_equiv

__all__ = ["d1_gsm8k_answer", "d1_math_answer", "d1_correct"]

_BOX_NONGREEDY = re.compile(r"\\boxed{(.*?)}")
_FIRST_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_NUM = re.compile(r"-?\d+\.?\d*")
_DOTS = re.compile(r"^\.+$")


def _float_or_number(text: str, which: int) -> float | None:
    try:
        return float(text)
    except ValueError:
        numbers = _NUM.findall(text)
        if not numbers:
            return None
        try:
            return float(numbers[which])
        except ValueError:
            return None


def d1_gsm8k_answer(completion: str) -> float | None:
    """The number d1's GSM8K parser reads from ``completion`` (None if none)."""
    for content in _BOX_NONGREEDY.findall(completion):
        content = content.strip()
        if content and content != "..." and not _DOTS.match(content):
            value = _float_or_number(content, 0)
            if value is not None:
                return value
    m = _FIRST_ANSWER.search(completion)
    if m is not None and m.group(1).strip():
        return _float_or_number(m.group(1).strip(), -1)
    return None


def d1_math_answer(completion: str) -> str | None:
    """The string d1's MATH parser reads from ``completion`` (None if none)."""
    boxed = _last_boxed_only_string(completion) if ("\\boxed" in completion or "\\fbox" in completion) else None
    try:
        parsed = _remove_boxed(boxed)  # type: ignore[arg-type]  # None raises, as in the original
    except Exception:  # noqa: BLE001 - as in the original (bare except)
        parsed = None
    if not parsed:
        m = _FIRST_ANSWER.search(completion)
        if m is not None:
            parsed = m.group(1).strip()
    return parsed


def _gold_float(gold: str) -> float | None:
    text = gold.split("####")[-1].replace(",", "").strip()
    try:
        return float(text)
    except ValueError:
        return None


def d1_correct(completion: str, gold: str, task: str = "auto") -> bool:
    """d1's verdict. ``task``: "gsm8k", "math", or "auto" (the GSM8K path when the gold is a plain number)."""
    gold_value = _gold_float(gold) if task != "math" else None
    if task == "gsm8k" or (task == "auto" and gold_value is not None):
        pred = d1_gsm8k_answer(completion)
        return pred is not None and gold_value is not None and pred == gold_value
    parsed = d1_math_answer(completion)
    return parsed is not None and bool(is_equiv(parsed, gold))
