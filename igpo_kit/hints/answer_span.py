"""Final-answer span of a ground-truth trace y*, in characters and in tokens (paper Sec. 3.1).

The paper "explicitly excludes the final answer tokens from chunking" (Sec. 3.1, Alg. 1 line 5); the released
code does not (spec sec. 3.3, sec. 12 item 4). This module finds the region to exclude.

Final-answer markers (each: its **last** occurrence in the trace):

* ``\\boxed{...}`` (also ``\\fbox{...}``), braces matched (LaTeX escapes ``\\{ \\}`` skipped); an unbalanced one
  runs to the end of the trace;
* ``#### ...`` to the end of its line (GSM8K / MetaMathQA ``GSM_AnsAug``);
* ``The answer is: ...`` to the end of the trace (MetaMathQA; case-insensitive, the colon required, so a sentence
  such as "so the answer is 30" inside the reasoning is not a marker);
* ``<answer>...</answer>`` (d1 / Length-Aligned SFT format), to the closing tag or the end of the trace.

The answer region is the union of the marker that ends last with every other marker that overlaps it or ends at
most ``max_gap`` characters before it (applied transitively), i.e. the final-answer markers *near the end*; its
start is the **earliest** start among them, so a MetaMathQA trace ``...\\boxed{18}$.\\nThe answer is: 18`` excludes
everything from ``\\boxed`` on, and ``...#### 18\\nThe answer is: 18`` everything from ``####`` on. An earlier,
intermediate ``\\boxed{}`` far from the end is not part of the region.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from igpo_kit.grading.extract import match_brace

__all__ = ["TraceTokens", "find_answer_span", "char_span_to_token_span", "tokenize_trace"]

_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_HASHES_RE = re.compile(r"####")
_ANSWER_IS_RE = re.compile(r"the answer is\s*:", re.IGNORECASE)
_ANSWER_TAG_RE = re.compile(r"<answer>")


@dataclass(frozen=True)
class TraceTokens:
    """A tokenized ground-truth trace y*.

    Attributes:
        ids: the token ids of y* (no special tokens), ``|y*| = len(ids)`` (after truncation to ``max_tokens``).
        answer_span: ``(start, end)`` token indices (end exclusive) of the final-answer region, or None when the
            trace has no final-answer marker (or the marker was truncated away).
    """

    ids: list[int]
    answer_span: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.ids)


def _last(regex: re.Pattern, text: str) -> re.Match | None:
    match = None
    for match in regex.finditer(text):
        pass
    return match


def _markers(trace: str) -> list[tuple[int, int]]:
    """``(start, end)`` character spans (end exclusive) of the last occurrence of each final-answer marker."""
    spans = []
    m = _last(_BOXED_RE, trace)
    if m is not None:
        close = match_brace(trace, m.end() - 1)
        spans.append((m.start(), len(trace) if close is None else close + 1))
    m = _last(_HASHES_RE, trace)
    if m is not None:
        eol = trace.find("\n", m.end())
        spans.append((m.start(), len(trace) if eol < 0 else eol))
    m = _last(_ANSWER_IS_RE, trace)
    if m is not None:
        spans.append((m.start(), len(trace)))
    m = _last(_ANSWER_TAG_RE, trace)
    if m is not None:
        close = trace.find("</answer>", m.end())
        spans.append((m.start(), len(trace) if close < 0 else close + len("</answer>")))
    return spans


def find_answer_span(trace: str, max_gap: int = 40) -> tuple[int, int] | None:
    """Character span ``(start, end)`` (end exclusive) of the final-answer region of ``trace``, or None.

    Args:
        trace: the ground-truth reasoning trace y* as text.
        max_gap: markers whose end lies at most this many characters before the region's start join it
            (``"\\boxed{18}$.\\nThe answer is: 18"`` -> one region starting at ``\\boxed``).
    Returns:
        the span, or None when the trace has no final-answer marker.
    """
    spans = _markers(trace)
    if not spans:
        return None
    start, end = max(spans, key=lambda s: (s[1], -s[0]))
    changed = True
    while changed:
        changed = False
        for s, e in spans:
            if s < start and e >= start - max_gap:
                start, end, changed = s, max(end, e), True
    return start, end


def char_span_to_token_span(
    offsets: list[tuple[int, int]], span: tuple[int, int]
) -> tuple[int, int] | None:
    """Token span covering the character ``span``: first token ending after ``span[0]`` to the last token
    starting before ``span[1]`` (end exclusive); None if no token overlaps.

    Args:
        offsets: per-token ``(char_start, char_end)`` as returned with ``return_offsets_mapping=True``.
        span: ``(start, end)`` character span, end exclusive.
    """
    cs, ce = span
    first = next((i for i, (a, b) in enumerate(offsets) if b > cs or (a == b and a >= cs)), None)
    last = next((i for i in range(len(offsets) - 1, -1, -1) if offsets[i][0] < ce), None)
    if first is None or last is None or last < first:
        return None
    return first, last + 1


def tokenize_trace(tokenizer, trace: str, max_tokens: int | None = None) -> TraceTokens:
    """Tokenize y* (``add_special_tokens=False``) and map its final-answer span to token indices.

    Args:
        tokenizer: a fast ``transformers`` tokenizer (offsets are needed to map characters to tokens).
        trace: y* as text (spec sec. 3.1: ``"<reasoning>\\n" + response``).
        max_tokens: keep only the first ``max_tokens`` tokens (the answer span is clipped; None if cut off).
    Returns:
        :class:`TraceTokens` with ``ids: list[int]`` (length ``|y*|``) and ``answer_span`` in token indices.
    Raises:
        TypeError: the tokenizer cannot return offsets (a slow tokenizer).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(
            f"tokenize_trace needs a fast tokenizer (return_offsets_mapping); got {type(tokenizer).__name__}"
        )
    enc = tokenizer(trace, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    char_span = find_answer_span(trace)
    span = None if char_span is None else char_span_to_token_span(offsets, char_span)
    if max_tokens is not None:
        ids = ids[: max(0, max_tokens)]
        if span is not None:
            span = (span[0], min(span[1], len(ids))) if span[0] < len(ids) else None
    return TraceTokens(ids=ids, answer_span=span)
