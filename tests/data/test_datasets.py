import json
from pathlib import Path

import pytest

from igpo_kit.data import Example, datasets
from igpo_kit.data.io import DataError
from igpo_kit.errors import ConfigError

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "data"


def test_gsm8k_fixture():
    exs = datasets.gsm8k(path=str(FIX / "gsm8k_10.jsonl"))
    assert len(exs) == 10 and all(isinstance(e, Example) for e in exs)
    first = exs[0]
    assert first.id == "gsm8k/test/0"
    assert first.answer == "18"
    assert first.question.startswith("Janet")
    assert first.trace is not None and "<<" not in first.trace and "####" not in first.trace
    assert "She makes 9 * 2 = $18 every day" in first.trace
    assert exs[8].answer == "-10"
    assert exs[9].answer == "1450000"  # commas removed
    assert first.source.endswith("gsm8k_10.jsonl")
    assert datasets.gsm8k(path=str(FIX / "gsm8k_10.jsonl"), limit=3)[-1].id == "gsm8k/test/2"
    assert datasets.gsm8k(path=str(FIX / "gsm8k_10.jsonl"), limit=0) == []


def test_gsm8k_without_hash_is_an_error(tmp_path):
    p = tmp_path / "g.jsonl"
    p.write_text('{"question": "q", "answer": "12"}\n')
    with pytest.raises(DataError, match=r"g\.jsonl:1: field 'answer' has no '####'"):
        datasets.gsm8k(path=str(p))


def test_math500_fixture():
    exs = datasets.math500(path=str(FIX / "math500_5.jsonl"))
    assert len(exs) == 5
    assert exs[0].answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert exs[0].trace.startswith("We have that")
    assert exs[0].meta["subject"] == "Precalculus" and exs[0].meta["level"] == 2
    assert exs[0].id == "math500/test/0"


def test_math500_falls_back_to_boxed_solution(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text(json.dumps({"problem": "p", "solution": "so $\\boxed{\\frac{1}{2}}$."}) + "\n")
    assert datasets.math500(path=str(p))[0].answer == "\\frac{1}{2}"
    p.write_text(json.dumps({"problem": "p"}) + "\n")
    with pytest.raises(DataError, match=r"m\.jsonl:1: missing field 'answer'"):
        datasets.math500(path=str(p))


def test_amc_fixture():
    exs = datasets.amc(path=str(FIX / "amc_3.jsonl"))
    assert [e.answer for e in exs] == ["142", "144", "81"]
    assert exs[0].meta["url"].endswith("Problem_1")
    assert exs[0].trace is None and exs[0].id == "amc/train/0"


def test_minerva_fixture():
    exs = datasets.minerva(path=str(FIX / "minerva_4.jsonl"))
    assert [e.answer for e in exs] == ["1.6", "4.5e33", "100", "3.83e35"]
    assert exs[0].trace is not None and exs[0].meta["idx"] == 0


def test_minerva_answer_field_and_missing_box(tmp_path):
    p = tmp_path / "mi.jsonl"
    p.write_text(
        json.dumps({"problem": "p", "solution": "\\boxed{1}", "answer": "2"}) + "\n"
        + json.dumps({"problem": "p", "solution": "no box here"}) + "\n"
    )
    with pytest.raises(DataError, match=r"mi\.jsonl:2: no balanced \\boxed"):
        datasets.minerva(path=str(p))
    assert datasets.minerva(path=str(p), limit=1)[0].answer == "2"


@pytest.mark.parametrize("name", ["metamathqa_6.json", "metamathqa_6.jsonl"])
def test_metamathqa_filter_dedupe_answer_trace(name):
    """Spec sec. 13 item 20: unique queries, answer after the last "The answer is:", trace = full response."""
    exs = datasets.metamathqa(path=str(FIX / name))
    rows = json.loads((FIX / "metamathqa_6.json").read_text())
    # row 2 (GSM_Rephrased) filtered, row 3 duplicates row 0's query: the first occurrence is kept
    assert [e.id for e in exs] == ["metamathqa/train/0", "metamathqa/train/1", "metamathqa/train/4", "metamathqa/train/5"]
    assert len({e.question for e in exs}) == len(exs)
    assert exs[0].trace == rows[0]["response"]  # the first response, not the duplicate's
    assert [e.answer for e in exs] == ["72", "1", "7", "10"]  # "7": the LAST "The answer is:"; "10": after ####
    for e in exs:
        response = rows[int(e.id.rsplit("/", 1)[1])]["response"]
        if "The answer is:" in response:
            assert e.answer == response.rsplit("The answer is:", 1)[1].strip()
    assert exs[1].meta["type"] == "MATH_AnsAug"


def test_metamathqa_options():
    path = str(FIX / "metamathqa_6.json")
    official = datasets.metamathqa(path=path, trace_prefix="<reasoning>\n")
    assert all(e.trace.startswith("<reasoning>\n") for e in official)
    assert len(datasets.metamathqa(path=path, types=None)) == 5  # only the duplicate is dropped
    assert len(datasets.metamathqa(path=path, types=None, dedupe=False)) == 6
    assert len(datasets.metamathqa(path=path, types=["GSM_AnsAug"])) == 2
    assert len(datasets.metamathqa(path=path, limit=2)) == 2


def test_metamath_answer_fallbacks():
    assert datasets.metamath_answer("x\nThe answer is: 5\nmore\nThe answer is:  7 ") == "7"
    assert datasets.metamath_answer("work\n#### 42") == "42"
    assert datasets.metamath_answer("  just text ") == "just text"


def test_openr1_fixture():
    exs = datasets.openr1_math(path=str(FIX / "openr1_3.jsonl"))
    assert [e.answer for e in exs] == ["4", "42", "1024"]
    assert exs[0].trace.startswith("Subtract 3")
    assert exs[1].trace.startswith("<think>")  # empty solution -> first generation
    gen = datasets.openr1_math(path=str(FIX / "openr1_3.jsonl"), trace_source="generation")
    assert gen[0].trace.startswith("<think>") and gen[2].trace == "$2^{10} = 1024$."
    with pytest.raises(ConfigError):
        datasets.openr1_math(path=str(FIX / "openr1_3.jsonl"), trace_source="both")


def test_generic_jsonl_loader(tmp_path):
    exs = datasets.jsonl(path=str(FIX / "gsm8k_10.jsonl"), limit=2)
    assert exs[0].id == "gsm8k_10/train/0" and exs[0].answer.endswith("#### 18")
    p = tmp_path / "custom.jsonl"
    p.write_text(json.dumps({"uid": "a1", "q": "2+2?", "a": 4.0, "why": "2+2=4", "extra": 1}) + "\n")
    (ex,) = datasets.jsonl(path=str(p), question_field="q", answer_field="a", trace_field="why", id_field="uid")
    assert ex == Example(id="a1", question="2+2?", answer="4", trace="2+2=4", source=str(p), meta={"extra": 1})
    with pytest.raises(ConfigError):
        datasets.jsonl()


def test_loaders_report_missing_fields():
    with pytest.raises(DataError) as info:
        datasets.jsonl(path=str(FIX / "missing_answer.jsonl"))
    assert "missing_answer.jsonl:2: missing field 'answer'" in str(info.value)


def test_gsm8k_reports_missing_field(tmp_path):
    p = tmp_path / "g.jsonl"
    p.write_text('{"question": "q", "answer": "x #### 1"}\n{"question": "q2"}\n')
    with pytest.raises(DataError, match=r"g\.jsonl:2: missing field 'answer' \(fields present: question\)"):
        datasets.gsm8k(path=str(p))
    assert len(datasets.gsm8k(path=str(p), limit=1)) == 1


def test_other_loaders_report_missing_fields():
    with pytest.raises(DataError, match=r"gsm8k_10\.jsonl:1: missing field 'problem'"):
        datasets.amc(path=str(FIX / "gsm8k_10.jsonl"))
    with pytest.raises(DataError, match=r"malformed_line3\.jsonl:3: malformed JSON row"):
        datasets.gsm8k(path=str(FIX / "malformed_line3.jsonl"))


def test_bad_limit():
    with pytest.raises(ConfigError):
        datasets.gsm8k(path=str(FIX / "gsm8k_10.jsonl"), limit=-1)


def test_answer_text():
    assert datasets.answer_text(142.0) == "142"
    assert datasets.answer_text(0.5) == "0.5"
    assert datasets.answer_text(7) == "7"
    assert datasets.answer_text(" 142.0 ") == "142"
    assert datasets.answer_text("\\frac{1}{2}") == "\\frac{1}{2}"
