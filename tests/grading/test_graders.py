import pickle
import signal
import time

import pytest

from igpo_kit.errors import ConfigError
from igpo_kit.grading import graders
from igpo_kit.grading.official import is_equiv, strip_string


def fmt(answer: str, reasoning: str = "Some work.") -> str:
    """A well-formed completion with ``answer`` inside <answer>."""
    return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{answer}\n</answer>"


def boxed(x: str) -> str:
    return fmt(f"\\boxed{{{x}}}")


# (completion, gold, math_verify score, gsm8k score, official score)
CASES = [
    (boxed("18"), "18", 1, 1, 3),
    (boxed("18.0"), "18", 1, 1, 0),  # released reward: 18.0 != 18
    (boxed("1,234"), "1234", 1, 1, 0),
    (boxed("1234"), "1,234", 1, 1, 0),
    (boxed("70,000"), "70000", 1, 1, 0),
    (boxed("\\$70,000"), "70000", 1, 1, 0),
    (boxed("-10"), "-10", 1, 1, 3),
    (boxed("10"), "-10", 0, 0, 0),
    (boxed("-3"), "3", 0, 0, 0),
    (boxed("\\frac{1}{2}"), "0.5", 1, 1, 3),
    (boxed("0.5"), "\\frac{1}{2}", 1, 1, 3),
    (boxed("3/4"), "\\frac{3}{4}", 1, 1, 3),
    (boxed("\\dfrac{3}{4}"), "\\frac{3}{4}", 1, 1, 3),
    (boxed("5 \\text{ dollars}"), "5", 1, 1, 3),
    (boxed("19"), "18", 0, 0, 0),
    (boxed("18.90"), "\\$18.90", 1, 1, 3),  # an escaped dollar in the gold is not a LaTeX delimiter
    (boxed("32348"), "\\$32,\\!348", 1, 1, 0),
    (fmt("18"), "18", 0, 1, 0),  # unboxed: 0 when a box is required
    ("The answer is 18.", "18", 0, 1, 0),
    (fmt("\\boxed{3} or maybe \\boxed{4}"), "4", 1, 1, 0),  # last box (default) vs first box (official)
    (fmt("\\boxed{3} or maybe \\boxed{4}"), "3", 0, 0, 3),
    (boxed("4.5e33"), "4.5e33", 1, 1, 3),
    # the numeric grader only sees the last number (2 in both): right here by coincidence
    (boxed("\\left( 3, \\frac{\\pi}{2} \\right)"), "\\left( 3, \\frac{\\pi}{2} \\right)", 1, 1, 3),
    (boxed("(3,\\frac{\\pi}{2})"), "\\left( 3, \\frac{\\pi}{2} \\right)", 1, 1, 3),
    (boxed("(3,\\frac{\\pi}{4})"), "\\left( 3, \\frac{\\pi}{2} \\right)", 0, 0, 0),
    (boxed("\\text{(B)}"), "B", 1, 0, 0),
    ("", "18", 0, 0, 0),
]


@pytest.mark.parametrize("completion, gold, mv, g8, off", CASES)
def test_grader_table(completion, gold, mv, g8, off):
    assert graders.math_verify().score(completion, gold) == float(mv)
    assert graders.math_verify(fast_numeric=False).score(completion, gold) == float(mv)
    assert graders.gsm8k().score(completion, gold) == float(g8)
    assert graders.official().score(completion, gold) == float(off)


def test_gsm8k_grader_accepts_raw_gsm8k_solution_as_gold():
    assert graders.gsm8k().score(boxed("72"), "48+24 = <<48+24=72>>72\n#### 72") == 1.0
    assert graders.gsm8k().score(boxed("1,450,000"), "#### 1,450,000") == 1.0


def test_boxed_option_first_vs_last():
    c = fmt("\\boxed{3} no wait \\boxed{4}")
    assert graders.math_verify(boxed="first").score(c, "3") == 1.0
    assert graders.math_verify(boxed="last").score(c, "3") == 0.0
    assert graders.gsm8k(boxed="first").score(c, "3") == 1.0
    with pytest.raises(ConfigError):
        graders.math_verify(boxed="middle")


def test_require_boxed_false_falls_back_to_answer_region():
    g = graders.math_verify(require_boxed=False)
    assert g.score(fmt("18"), "18") == 1.0
    assert g.score(fmt("The total is 1,234 dollars."), "1234") == 1.0
    assert graders.gsm8k(require_boxed=True).score(fmt("18"), "18") == 0.0


def test_box_outside_answer_region_does_not_count():
    c = "<reasoning>\nmaybe \\boxed{18}\n</reasoning>\n<answer>\n18\n</answer>"
    assert graders.math_verify().score(c, "18") == 0.0
    # the released reward looks at the whole completion (first box anywhere)
    assert graders.official().score(c, "18") == 3.0


def test_correct_value_and_max_score():
    g = graders.math_verify(correct_value=3.0)
    assert g.score(boxed("18"), "18") == 3.0
    assert g.max_score == 3.0 and g.role == "correctness"
    assert graders.official().max_score == 3.0
    assert graders.xmlcount().max_score == 0.75 and graders.xmlcount().role == "format"


def test_graders_are_picklable_frozen_dataclasses():
    for g in (graders.math_verify(), graders.gsm8k(), graders.official(), graders.format(), graders.xmlcount()):
        assert pickle.loads(pickle.dumps(g)) == g
        with pytest.raises(Exception):
            g.correct_value = 2.0  # frozen
        assert isinstance(g.name, str)


# --- official reward (spec sec. 7.1, sec. 13 item 19) ---------------------------------------------------------


@pytest.mark.parametrize(
    "completion, gold, expected",
    [
        (boxed("18"), "18", 3.0),
        ("<answer>18</answer>", "18", 0.0),  # a box is mandatory
        (boxed("18.0"), "18", 0.0),
        (fmt("\\boxed{7} then \\boxed{18}"), "18", 0.0),  # first box decides
        ("<reasoning>\\boxed{18} copied hint</reasoning><answer>\\boxed{5}</answer>", "18", 3.0),
        (boxed("k = 5"), "5", 3.0),  # short "k =" prefix removed
        (boxed("90^\\circ"), "90", 3.0),
        (boxed("\\frac12"), "\\frac{1}{2}", 3.0),
        (boxed("\\sqrt2"), "\\sqrt{2}", 3.0),
        (boxed(".5"), "\\frac{1}{2}", 3.0),
        (boxed("10\\%"), "10", 3.0),
        (boxed("\\boxed{4}"), "4", 3.0),  # nested box: inner content via last_boxed_only_string/remove_boxed
        ("\\boxed{18", "18", 0.0),  # unbalanced -> ""
    ],
)
def test_official_reward(completion, gold, expected):
    assert graders.official().score(completion, gold) == expected


def test_official_helpers():
    assert strip_string("\\left( 1, 2 \\right)") == "(1,2)"
    assert strip_string("\\dfrac{1}{2}") == "\\frac{1}{2}"
    assert strip_string("3/4") == "\\frac{3}{4}"
    assert strip_string("5 \\text{ cm}") == "5"
    assert is_equiv("0.5", "\\frac{1}{2}")
    assert not is_equiv("18.0", "18")
    assert is_equiv(None, None) and not is_equiv("1", None)
    # normalisation errors fall back to raw string equality (a/b with non-integers raises in fix_a_slash_b)
    assert is_equiv("x/y", "x/y") and not is_equiv("x/y", "y/x")


# --- format rewards --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, expected",
    [
        (boxed("18"), 0.75),
        ("<reasoning>\nr\n</reasoning>\n<answer>\n18\n</answer>", 0.5),
        ("<reasoning>r</reasoning><answer>\\boxed{18}</answer>", 0.5),  # no newlines after opening tags
        ("", 0.0),
        ("\\boxed{18}", 0.25),
        ("<reasoning>\n<reasoning>\n</reasoning>\n<answer>\n\\boxed{1}\n</answer>", 0.625),
        ("<reasoning>\n</reasoning></reasoning><answer>\n</answer>", 0.375),  # </reasoning> twice
    ],
)
def test_xmlcount_values(completion, expected):
    score = graders.xmlcount().score(completion, "")
    assert score == expected
    assert score in {0.125 * k for k in range(7)}


def test_xmlcount_weight():
    assert graders.xmlcount(weight=2.0).score(boxed("1"), "") == 1.5


@pytest.mark.parametrize(
    "completion, expected",
    [
        (boxed("18"), 1.0),
        ("  <reasoning>r</reasoning>  <answer>\\boxed{18}</answer><|endoftext|>", 1.0),
        (fmt("18"), 0.0),  # no box
        ("<answer>\\boxed{1}</answer><reasoning>r</reasoning>", 0.0),  # wrong order
        ("text first <reasoning>r</reasoning><answer>\\boxed{1}</answer>", 0.0),
        ("<reasoning>r</reasoning> stray <answer>\\boxed{1}</answer>", 0.0),
        ("<reasoning>r</reasoning><answer>\\boxed{1}</answer><answer>\\boxed{2}</answer>", 0.0),
        ("<reasoning>r</reasoning>\n<answer>\\boxed{1</answer>", 0.0),  # unbalanced box
        ("<reasoning>r\n</reasoning>", 0.0),
    ],
)
def test_format_reward(completion, expected):
    assert graders.format().score(completion, "") == expected


def test_format_options():
    assert graders.format(weight=0.5).score(boxed("1"), "") == 0.5
    assert graders.format(require_boxed=False).score(fmt("18"), "") == 1.0
    prefilled = "\nwork\n</reasoning>\n<answer>\n\\boxed{1}\n</answer>"  # prompt ended with "<reasoning>"
    assert graders.format().score(prefilled, "") == 0.0
    assert graders.format(prefill="<reasoning>").score(prefilled, "") == 1.0


# --- time limits -----------------------------------------------------------------------------------------------

PATHOLOGICAL = boxed("\\prod_{k=1}^{3000}(1+1/k^2)")


def test_math_verify_timeout_scores_zero_in_main_thread():
    g = graders.math_verify(timeout_s=0.5)
    t0 = time.monotonic()
    assert g.score(PATHOLOGICAL, "3") == 0.0
    assert time.monotonic() - t0 < 3.0
    with pytest.raises(graders.GradingTimeout):
        g.score_checked(PATHOLOGICAL, "3")


def test_a_swallowed_deadline_still_ends_the_work():
    """Library code that catches the deadline once (a bare ``except:`` inside sympy / math-verify) used to run on
    unbounded after it (103 s in one CI run of the test above); the alarm now repeats until the work gives up."""

    def stubborn():
        try:
            while True:
                pass
        except BaseException:  # swallows the first tick, like a bare except
            pass
        t = time.monotonic()
        while time.monotonic() - t < 30:  # pure-Python work after swallowing: the next tick must end it
            pass
        return "finished"

    t0 = time.monotonic()
    with pytest.raises(graders.GradingTimeout):
        graders.call_with_time_limit(0.2, stubborn)
    assert time.monotonic() - t0 < 10  # not the 30 s the work would take
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # no tick left behind
    assert graders.call_with_time_limit(0.2, lambda: "fast") == "fast"
    time.sleep(0.3)  # a lingering repeat would raise here
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_time_limit_restores_an_outer_timer():
    fired = []
    old = signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 5.0)
        assert graders.math_verify().score(boxed("18"), "18") == 1.0
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 3.0 < left <= 5.0  # math-verify's own alarm(0) would have cancelled it
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert not fired


def test_score_works_off_the_main_thread():
    import threading

    out = []
    t = threading.Thread(target=lambda: out.append(graders.math_verify().score(boxed("1,234"), "1234")))
    t.start()
    t.join(30)
    assert out == [1.0]


NUMBER_PAIRS = [
    ("18", "18"), ("18.0", "18"), ("18", "18.00"), ("1,234", "1234"), ("1234", "1,234"), ("-10", "-10"),
    ("10", "-10"), ("-0", "0"), ("007", "7"), ("1,000,000", "1000000"), ("19", "18"), ("0.5", "0.50"),
    ("0.333333", "0.3333333"), ("2.5", "2.6"), ("123456789012345678901", "123456789012345678901"),
    ("123456789012345678901", "123456789012345678902"), ("1,2", "12"), ("3.14159", "3.14159"), ("1e3", "1000"),
]


@pytest.mark.parametrize("pred, gold", NUMBER_PAIRS)
def test_fast_numeric_path_agrees_with_math_verify(pred, gold):
    fast = graders.math_verify(fast_numeric=True).score(boxed(pred), gold)
    slow = graders.math_verify(fast_numeric=False).score(boxed(pred), gold)
    assert fast == slow


# --- math: the default grader (shared extractor + math-verify + fallbacks) -----------------------------------------

MATH_CASES = [
    # the failure classes of issue #12 ...
    (boxed("20 white hats"), "20", 1),
    (boxed("21 white hats"), "20", 0),
    (boxed("2:00 pm"), "2", 1),
    (fmt("boxed{27}"), "27", 1),
    ("<answer>\n\\boxed{78\n</answer>", "78", 1),
    (fmt("5 changes/day"), "5", 1),
    ("<answer>\n</answer>\n\\boxed{5}", "5", 1),
    ("<answer>\\boxed{3} plums.\n</<answer>", "3", 1),
    (fmt("\\boxed{}32"), "32", 1),
    (fmt("\\boxed{}33"), "32", 0),
    # ... and what math-verify wins, kept
    (boxed("6,277"), "6277", 1),
    (boxed("-3"), "-3", 1),
    (boxed("3"), "-3", 0),
    (boxed("15.975"), "\\frac{639}{40}", 1),
    (boxed("7i - 2"), "-2 + 7i", 1),
    (boxed("7i + 2"), "-2 + 7i", 0),
    (boxed("\\sqrt{3}/3"), "\\frac{\\sqrt{3}}{3}", 1),
    (boxed("\\text{east}"), "\\text{east}", 1),
    (boxed("east"), "\\text{east}", 1),
    (boxed("\\text{west}"), "\\text{east}", 0),
    (boxed("\\frac{3}{24}"), "\\frac{1}{8}", 1),  # equal value; reduced_fractions=True rejects it
    (boxed("\\$18.90"), "18.90", 1),
    (boxed("18.0"), "18", 1),
]


@pytest.mark.parametrize("completion, gold, expected", MATH_CASES)
def test_math_grader(completion, gold, expected):
    assert graders.math().score(completion, gold) == expected


def test_math_grader_reduced_fractions_option():
    strict = graders.math(reduced_fractions=True)
    assert strict.score(boxed("\\frac{3}{24}"), "\\frac{1}{8}") == 0
    assert strict.score(boxed("6/8"), "\\frac{3}{4}") == 0
    assert strict.score(boxed("\\frac{1}{8}"), "\\frac{1}{8}") == 1
    assert strict.score(boxed("0.125"), "\\frac{1}{8}") == 1
    assert strict.score(boxed("\\frac{4}{2}"), "2") == 1  # the gold is not a fraction: nothing to reduce


@pytest.mark.parametrize(
    "pred",
    ["\\frac{1}{\\frac{1}{\\frac{1}{\\frac{1}{" * 30 + "x" + "}}}}" * 30, "9^{9^{9^{9^{9^{9^{9}}}}}}"],
)
def test_math_grader_pathological_answers_time_out(pred):
    g = graders.math(timeout_s=0.5)
    t0 = time.monotonic()
    assert g.score(boxed(pred), "3") == 0.0
    assert time.monotonic() - t0 < 30  # bounded (a generous bound: this only guards against a hang)


def test_gsm8k_grader_fixes_clock_times_and_broken_tags():
    g = graders.gsm8k()
    assert g.score(boxed("2:00 pm"), "2") == 1  # it read "00" before
    assert g.score("<answer>\\boxed{3} plums.\n</<answer>", "3") == 1
    assert g.score(fmt("\\boxed{}32"), "32") == 1
    assert g.score("<reasoning>\nso 16 - 3 = 13 and", "13") == 0  # truncated: no number guessed


def test_d1_reference_parser():
    g = graders.d1()
    assert g.score(boxed("6,277"), "6277") == 0  # reads the first number, 6
    assert g.score(boxed("20 white hats"), "20") == 1
    assert g.score(boxed("\\frac{1}{2}"), "\\frac{1}{2}") == 1  # MATH path: is_equiv
    assert g.score("\\boxed{9} then <answer>\\boxed{18}</answer>", "18") == 0  # the first box wins
    with pytest.raises(ConfigError):
        graders.d1(task="nope")


def test_math_grader_list_gold_is_not_a_number():
    g = graders.math()
    assert g.score(boxed("12"), "1,2") == 0  # a list, not twelve
    assert g.score(boxed("1, 2"), "1,2") == 1
    assert g.score(boxed("1234"), "1,234") == 1  # a thousands separator
