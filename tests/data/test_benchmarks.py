"""The real benchmark files in ../shared/data/benchmarks through the loaders (skipped where absent)."""

from pathlib import Path

import pytest

from igpo_kit.data import datasets
from igpo_kit.grading import grade_many, graders

BENCH = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "benchmarks"


def _file(name: str) -> str:
    path = BENCH / name
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return str(path)


@pytest.mark.parametrize(
    "loader, file, count",
    [
        (datasets.gsm8k, "gsm8k_test.jsonl", 1319),
        (datasets.math500, "math500_test.jsonl", 500),
        (datasets.amc, "amc_test.jsonl", 83),
        (datasets.amc, "amc23_test.jsonl", 40),
        (datasets.minerva, "minerva_math_test.jsonl", 272),
    ],
)
def test_benchmark_counts_and_golds(loader, file, count):
    exs = loader(path=_file(file))
    assert len(exs) == count
    assert all(e.answer.strip() and e.question.strip() for e in exs)
    assert len({e.id for e in exs}) == count


def test_gsm8k_golds_grade_themselves():
    exs = datasets.gsm8k(path=_file("gsm8k_test.jsonl"))
    comps = [f"<reasoning>\n{e.trace}\n</reasoning>\n<answer>\n\\boxed{{{e.answer}}}\n</answer>" for e in exs]
    golds = [e.answer for e in exs]
    assert grade_many(graders.gsm8k(), comps, golds).scores == [1.0] * len(exs)
    assert sum(graders.official().score(c, g) for c, g in zip(comps, golds)) == 3.0 * len(exs)
    assert all(graders.xmlcount().score(c) == 0.75 for c in comps[:50])
    assert all(graders.format().score(c) == 1.0 for c in comps[:50])
    negative = [e for e in exs if e.answer.startswith("-")]
    assert {e.answer for e in negative} >= {"-10"}
    assert not any("," in e.answer for e in exs)


def test_math500_golds_verify_with_math_verify():
    exs = datasets.math500(path=_file("math500_test.jsonl"), limit=100)
    comps = [f"<answer>\\boxed{{{e.answer}}}</answer>" for e in exs]
    report = grade_many(graders.math_verify(), comps, [e.answer for e in exs], timeout_s=5.0, workers=2)
    assert report.timeouts == 0 and report.errors == 0
    assert sum(report.scores) >= 98  # a gold always verifies against itself (allow parser corner cases)


def test_minerva_and_amc_golds_verify_with_math_verify():
    exs = datasets.minerva(path=_file("minerva_math_test.jsonl"), limit=60) + datasets.amc(path=_file("amc_test.jsonl"))
    comps = [f"<answer>\\boxed{{{e.answer}}}</answer>" for e in exs]
    report = grade_many(graders.math_verify(), comps, [e.answer for e in exs], timeout_s=5.0, workers=2)
    assert report.timeouts == 0 and report.errors == 0
    assert sum(report.scores) >= len(exs) - 3
