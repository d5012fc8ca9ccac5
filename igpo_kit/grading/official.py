"""The released code's correctness check, reproduced for the ``official`` grader (spec sec. 7.1, sec. 12 item 20).

Behaviour reproduced on purpose (do not "fix" it here; the clean graders live in :mod:`igpo_kit.grading.graders`):

* the prediction is the content of the **first** ``\\boxed{`` of the whole completion, braces counted naively
  (no escape handling), stripped; ``""`` when there is none or it is unbalanced;
* that string then goes through the Hendrycks-MATH helpers (``last_boxed_only_string`` / ``remove_boxed``, identities
  unless the extracted text itself holds a ``\\boxed``), the ``<answer>`` fallback (which therefore never fires on a
  real completion) and ``is_equiv`` = ``strip_string`` normalisation on both sides, then string equality; any
  exception inside the normalisation falls back to raw string equality.

Consequences (checked by the tests): ``18.0`` vs ``18`` is wrong, ``<answer>18</answer>`` without a box is wrong,
``0.5`` equals ``\\frac{1}{2}``, ``3/4`` equals ``\\frac{3}{4}``.
"""

from __future__ import annotations

import re

__all__ = ["extract_first_boxed", "strip_string", "is_equiv", "official_correct"]


def extract_first_boxed(text: str) -> str:
    """Content of the first ``\\boxed{`` (naive brace count, stripped); ``""`` if none or unbalanced."""
    key = "\\boxed{"
    pos = text.find(key)
    if pos < 0:
        return ""
    start = pos + len(key)
    depth = 1
    end = start
    while end < len(text) and depth > 0:
        ch = text[end]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        end += 1
    if depth == 0:
        return text[start : end - 1].strip()
    return ""


def _last_boxed_only_string(text: str) -> str | None:
    idx = text.rfind("\\boxed")
    if "\\boxed " in text:
        return "\\boxed " + text.split("\\boxed ")[-1].split("$")[0]
    if idx < 0:
        idx = text.rfind("\\fbox")
        if idx < 0:
            return text
    depth = 0
    for i in range(idx, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[idx : i + 1]
    return None


def _remove_boxed(text: str) -> str:
    # ``text`` may be None: the TypeError is what the released code relies on (caught by the caller).
    if "\\boxed " in text:
        left = "\\boxed "
        if not text.startswith(left):
            raise AssertionError("not a \\boxed expression")
        return text[len(left) :]
    left = "\\boxed{"
    if text.startswith(left) and text.endswith("}"):
        return text[len(left) : -1]
    return text


def _fix_fracs(text: str) -> str:
    parts = text.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if part[0] == "{":  # IndexError on an empty part, as in the original
            out += part
            continue
        if len(part) < 2:
            return text
        a, b = part[0], part[1]
        rest = part[2:]
        if b != "{":
            out += "{" + a + "}{" + b + "}" + rest
        else:
            out += "{" + a + "}" + b + rest
    return out


def _fix_a_slash_b(text: str) -> str:
    pieces = text.split("/")
    if len(pieces) != 2:
        return text
    a, b = int(pieces[0]), int(pieces[1])  # ValueError propagates (caught by is_equiv), as in the original
    if text != f"{a}/{b}":
        return text
    return "\\frac{" + str(a) + "}{" + str(b) + "}"


def _remove_right_units(text: str) -> str:
    if "\\text{ " in text:
        pieces = text.split("\\text{ ")
        if len(pieces) != 2:
            raise AssertionError("more than one unit")
        return pieces[0]
    return text


def _fix_sqrt(text: str) -> str:
    if "\\sqrt" not in text:
        return text
    pieces = text.split("\\sqrt")
    out = pieces[0]
    for piece in pieces[1:]:
        if piece[0] != "{":  # IndexError on an empty piece, as in the original
            out += "\\sqrt{" + piece[0] + "}" + piece[1:]
        else:
            out += "\\sqrt" + piece
    return out


def strip_string(text: str) -> str:
    """Hendrycks-MATH answer normalisation (may raise on odd inputs, like the original)."""
    s = text.replace("\n", "")
    s = s.replace("\\!", "")
    s = s.replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\\$", "")
    s = _remove_right_units(s)
    s = s.replace("\\%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    halves = s.split("=")
    if len(halves) == 2 and len(halves[0]) <= 2:
        s = halves[1]
    s = _fix_sqrt(s)
    s = s.replace(" ", "")
    s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    s = _fix_a_slash_b(s)
    return s


def is_equiv(pred: str | None, gold: str | None) -> bool:
    """``strip_string(pred) == strip_string(gold)``; raw equality if normalisation raises."""
    if pred is None and gold is None:
        return True
    if pred is None or gold is None:
        return False
    try:
        return strip_string(pred) == strip_string(gold)
    except Exception:
        return pred == gold


_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def official_correct(completion: str, gold: str) -> bool:
    """The released ``correctness_reward_func`` decision for one completion (True = reward 3.0)."""
    extracted = extract_first_boxed(completion)
    try:
        parsed: str | None = _remove_boxed(_last_boxed_only_string(extracted))  # type: ignore[arg-type]
    except Exception:
        parsed = None
    if not parsed:
        m = _ANSWER_RE.search(extracted)
        if m:
            parsed = m.group(1).strip()
    if parsed is None:
        return False
    return bool(is_equiv(parsed, gold))
