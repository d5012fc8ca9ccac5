"""Final-answer span detection (paper Sec. 3.1 'exclude the final answer'; spec invariant 11)."""

from __future__ import annotations

import pytest

from igpo_kit.hints.answer_span import TraceTokens, char_span_to_token_span, find_answer_span, tokenize_trace

GSM = "<reasoning>\nJanet has 3 apples and buys 15 more, so 3 + 15 = 18.\n#### 18\nThe answer is: 18"
MATH = (
    "<reasoning>\nFirst \\boxed{x} is a placeholder. We have x^2 = 1/4, so x = \\boxed{\\frac{1}{2}}$.\n"
    "The answer is: \\frac{1}{2}"
)
BOXED_ONLY = "<reasoning>\nWe get 6 * 3 = 18, hence \\boxed{18}."
HASH_ONLY = "Natalia sold 48 + 24 = 72 clips.\n#### 72"
ANSWER_IS_ONLY = "Compute 9 + 9 = 18.\nThe answer is: 18"


def _region(trace):
    span = find_answer_span(trace)
    return None if span is None else trace[span[0] : span[1]]


def test_gsm_region_starts_at_hashes_and_runs_to_end():
    assert _region(GSM) == "#### 18\nThe answer is: 18"


def test_math_region_starts_at_last_boxed_not_an_earlier_one():
    assert _region(MATH) == "\\boxed{\\frac{1}{2}}$.\nThe answer is: \\frac{1}{2}"


def test_boxed_braces_are_matched():
    assert _region(BOXED_ONLY) == "\\boxed{18}"
    assert _region("x \\boxed{\\frac{a}{b}} y") == "\\boxed{\\frac{a}{b}}"
    assert _region("x \\boxed{\\{1,2\\}}") == "\\boxed{\\{1,2\\}}"
    assert _region("cut \\boxed{\\frac{1}{2") == "\\boxed{\\frac{1}{2"  # unbalanced: to the end


def test_hashes_to_end_of_line_and_answer_is_to_end():
    assert _region(HASH_ONLY) == "#### 72"
    assert _region("a\n#### 72\nsome trailer") == "#### 72"
    assert _region(ANSWER_IS_ONLY) == "The answer is: 18"


def test_no_marker_and_colonless_sentence():
    assert find_answer_span("just reasoning 3 + 4 = 7") is None
    assert find_answer_span("Therefore, the answer is 30.") is None


def test_far_markers_are_not_merged():
    trace = "#### 5\n" + "reasoning " * 20 + "\\boxed{7}"
    assert _region(trace) == "\\boxed{7}"


@pytest.mark.parametrize("trace", [GSM, MATH, BOXED_ONLY, HASH_ONLY, ANSWER_IS_ONLY])
def test_token_span_covers_the_answer(tiny_lm, trace):
    tok = tiny_lm.tokenizer
    tt = tokenize_trace(tok, trace)
    assert isinstance(tt, TraceTokens)
    assert tt.ids == tok(trace, add_special_tokens=False)["input_ids"]
    a, b = tt.answer_span
    assert tok.decode(tt.ids[a:b]) == _region(trace)


def test_truncation_clips_or_drops_the_span(tiny_lm):
    tok = tiny_lm.tokenizer
    full = tokenize_trace(tok, GSM)
    a, b = full.answer_span
    cut = tokenize_trace(tok, GSM, max_tokens=a + 3)
    assert len(cut.ids) == a + 3 and cut.answer_span == (a, a + 3)
    assert tokenize_trace(tok, GSM, max_tokens=a).answer_span is None


def test_char_to_token_span_with_multichar_tokens():
    offsets = [(0, 3), (3, 4), (4, 9), (9, 12)]  # "abc" " " "#### " "18\n"
    assert char_span_to_token_span(offsets, (4, 12)) == (2, 4)
    assert char_span_to_token_span(offsets, (5, 7)) == (2, 3)  # inside one token
    assert char_span_to_token_span(offsets, (12, 15)) is None


def test_slow_tokenizer_is_refused():
    class Slow:
        is_fast = False

    with pytest.raises(TypeError):
        tokenize_trace(Slow(), GSM)
