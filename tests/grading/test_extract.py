import pytest

from igpo_kit.grading import extract


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<reasoning>r</reasoning><answer>\n42\n</answer>", "\n42\n"),
        ("<answer>1</answer> junk <answer>2</answer>", "2"),
        ("no tags at all 7", "no tags at all 7"),
        ("<reasoning>r</reasoning><answer>\\boxed{5", "\\boxed{5"),  # cut-off generation
    ],
)
def test_answer_region(text, expected):
    assert extract.answer_region(text) == expected


@pytest.mark.parametrize(
    "text, first, last",
    [
        ("\\boxed{1} and \\boxed{2}", "1", "2"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}", "\\frac{1}{2}"),
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}", "\\{1,2\\}"),  # escaped braces do not count
        ("\\boxed{ 18 }", "18", "18"),
        ("nothing here", None, None),
        ("\\boxed{unbalanced", None, None),
        ("\\boxed{3} then \\boxed{4", "3", None),  # the last one is unbalanced
        ("\\fbox{9}", "9", "9"),
    ],
)
def test_first_last_boxed(text, first, last):
    assert extract.first_boxed(text) == first
    assert extract.last_boxed(text) == last


def test_boxed_contents():
    assert extract.boxed_contents("\\boxed{1} \\boxed{2} \\boxed{3") == ["1", "2", None]


@pytest.mark.parametrize(
    "field, gold",
    [
        ("so 9 * 2 = $<<9*2=18>>18\n#### 18", "18"),
        ("#### 1,450,000", "1450000"),
        ("... #### -10", "-10"),
        ("12", "12"),
    ],
)
def test_gsm8k_gold(field, gold):
    assert extract.gsm8k_gold(field) == gold


def test_strip_calculator_annotations():
    assert extract.strip_calculator_annotations("9 * 2 = $<<9*2=18>>18 a day") == "9 * 2 = $18 a day"


@pytest.mark.parametrize(
    "text, value",
    [
        ("1,234", 1234.0),
        ("-3", -3.0),
        ("18.0", 18.0),
        ("\\$70,000", 70000.0),
        ("\\frac{3}{4}", 0.75),
        ("-\\frac{1}{2}", -0.5),
        ("3/4", 0.75),
        ("25\\%", 25.0),
        ("5 \\text{ dollars}", 5.0),
        ("\u22127", -7.0),  # unicode minus
        ("abc", None),
        ("1/0", None),
    ],
)
def test_parse_number(text, value):
    assert extract.parse_number(text) == value


def test_last_number_and_normalize():
    assert extract.last_number("She pays 3 + 4 = 7 dollars, total 1,234.") == 1234.0
    assert extract.last_number("x - 5 = -12") == -12.0
    assert extract.last_number("no digits") is None
    assert extract.normalize_number("18.0") == "18"
    assert extract.normalize_number("1,234.50") == "1234.5"
    assert extract.format_number(142.0) == "142"
    assert extract.format_number(0.5) == "0.5"


def test_scientific_to_latex():
    assert extract.scientific_to_latex("4.5e33") == "4.5 \\times 10^{33}"
    assert extract.scientific_to_latex("3e-6") == "3 \\times 10^{-6}"
    assert extract.scientific_to_latex("x^2") == "x^2"


# --- the shared extractor (issue #12 failure classes) -------------------------------------------------------------

PAD = "<|eot_id|>" * 3 + "<|endoftext|>" * 3


def wrap(answer_block: str) -> str:
    return f"<reasoning>\nWe add 2 and 3.\n</reasoning>\n<answer>\n{answer_block}\n</answer>" + PAD


@pytest.mark.parametrize(
    "completion, text, rule",
    [
        (wrap("\\boxed{20 white hats}"), "20", "box in answer region"),
        (wrap("\\boxed{60 tickets}"), "60", "box in answer region"),
        (wrap("\\boxed{60 \\text{ tickets}}"), "60", "box in answer region"),
        (wrap("\\boxed{2:00 pm}"), "2", "box in answer region"),
        (wrap("\\boxed{2:30 pm}"), "2:30 pm", "box in answer region"),  # not a whole hour: left for the grader
        (wrap("boxed{27}"), "27", "box in answer region"),
        ("<answer>\n\\boxed{78\n</answer>", "78", "box in answer region"),  # unclosed
        (wrap("5 changes/day"), "5", "answer region text"),
        (wrap("The answer is 35."), "35", "answer region text"),
        ("<reasoning>r</reasoning>\n<answer>\n</answer>\n\\boxed{5}" + PAD, "5", "box after answer region"),
        ("<answer>\n\\boxed{3} plums.\n</<answer>" + PAD, "3", "box in answer region"),  # broken closing tag
        ("<answer>\nWe add 4 and 1.\n</answer>\nSo the answer is \\boxed{5}.", "5", "box after answer region"),
        (wrap("\\boxed{}32"), "32", "answer region text"),
        ("<reasoning>\nFirst \\boxed{9}.\n</reasoning>\n<answer>\n\\boxed{18}\n</answer>", "18", "box in answer region"),
        ("<reasoning>\nFirst \\boxed{9}.\n</reasoning>\n<answer>\n18\n</answer>", "18", "answer region text"),
        ("Adding gives 18. The answer is $\\boxed{18}$.", "18", "box outside answer tags"),
        ("so she pays 18.\n#### 18", "18", "'answer is' phrase"),
        # what math-verify already wins on stays intact for it
        (wrap("\\boxed{6,277}"), "6,277", "box in answer region"),
        (wrap("\\boxed{-\\frac{\\pi}{6}}"), "-\\frac{\\pi}{6}", "box in answer region"),
        (wrap("\\boxed{\\text{east}}"), "\\text{east}", "box in answer region"),
        (wrap("\\boxed{x^2 + 7x + 10}"), "x^2 + 7x + 10", "box in answer region"),  # variables are not units
        (wrap("\\boxed{2 \\pi}"), "2 \\pi", "box in answer region"),
    ],
)
def test_extract_answer_classes(completion, text, rule):
    ans = extract.extract_answer(completion)
    assert ans is not None and (ans.text, ans.rule) == (text, rule)


@pytest.mark.parametrize(
    "completion",
    [
        "<reasoning>\nShe has 16 - 3 - 4 = 9 eggs and sells them at",  # truncated: no number is guessed
        "<reasoning>r</reasoning>\n<answer>\n\n</answer>" + PAD,  # empty region, no box anywhere
        wrap("\\boxed{}"),
        wrap("\\boxed{...}"),
        "",
    ],
)
def test_extract_answer_none(completion):
    assert extract.extract_answer(completion) is None


def test_extract_answer_first_box_option():
    c = wrap("\\boxed{1} or \\boxed{2}")
    assert extract.extract_answer(c, "first").text == "1"
    assert extract.extract_answer(c).text == "2"


def test_answer_regions_skip_broken_close_as_opening():
    text = "<answer>a</answer><answer>b</<answer>tail"
    assert [text[s:e] for s, e in extract.answer_regions(text)] == ["a", "b"]


def test_strip_special_tokens():
    assert extract.strip_special_tokens("x<|eot_id|><|endoftext|></s><eos>") == "x"


@pytest.mark.parametrize(
    "completion",
    [
        "<reasoning>\nTo find the answer: we compute 3 + 4 = 7 and then",  # cut inside the reasoning
        "So the answer is the number of apples she had left after giving 7 away to each of her friends",  # a sentence
    ],
)
def test_no_answer_is_guessed_from_a_phrase_in_reasoning(completion):
    assert extract.extract_answer(completion) is None
