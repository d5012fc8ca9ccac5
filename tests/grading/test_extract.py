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
