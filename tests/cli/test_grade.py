"""``igpo-kit grade``: one grader's accuracy, several graders compared, per-item verdicts, options, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from igpo_kit.cli.main import app

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "grading" / "llada_style.jsonl"
runner = CliRunner()


@pytest.fixture
def answers(tmp_path) -> Path:
    """60 labelled rows of the grading fixture (every second row: both sources, many classes, both labels)."""
    rows = FIXTURE.read_text().splitlines()[::6][:60]
    path = tmp_path / "answers.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_grader_json(answers):
    r = runner.invoke(app, ["grade", str(answers), "--grader", "gsm8k", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert {"file", "grader", "n", "correct", "accuracy", "timeouts", "errors", "answers_per_s"} <= set(res)
    assert res["grader"] == "gsm8k" and res["n"] == len(rows_of(answers))
    assert 0 < res["label_agreement"] <= 1  # the rows have a "label" field


def test_compare_graders_agreement_and_verdicts_file(answers, tmp_path):
    out = tmp_path / "v.jsonl"
    r = runner.invoke(app, ["grade", str(answers), "--grader", "math,d1,official", "--json", "--out", str(out),
                            "--workers", "1"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    names = [g["grader"] for g in res["graders"]]
    assert names == ["math", "d1", "official"]
    by = {g["grader"]: g for g in res["graders"]}
    assert by["math"]["label_agreement"] == 1.0 and by["d1"]["label_agreement"] < 1.0
    verdicts = rows_of(out)
    assert len(verdicts) == res["n"]
    for a in names:
        assert res["agreement"][a][a] == 1.0
        for b in names:
            same = sum(v["verdicts"][a]["correct"] == v["verdicts"][b]["correct"] for v in verdicts)
            assert res["agreement"][a][b] == pytest.approx(same / res["n"])
    disagree = [v["index"] for v in verdicts if len({v["verdicts"][n]["correct"] for n in names}) > 1]
    assert res["disagreements"] == disagree and disagree
    source = rows_of(answers)
    for v in verdicts:
        assert v["id"] == source[v["index"]]["id"]
        assert v["verdicts"]["math"]["correct"] == source[v["index"]]["label"]
        if source[v["index"]]["answer"] is None:
            assert v["verdicts"]["math"]["answer"] is None


def test_compare_text_output_lists_disagreements(answers):
    r = runner.invoke(app, ["grade", str(answers), "--grader", "math,math_verify", "--show", "3", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "agreement" in r.stdout and "disagreeing items (first 3)" in r.stdout
    assert "math_verify:" in r.stdout


def test_grader_arg_sets_an_option(tmp_path):
    rows = [r for r in rows_of(FIXTURE) if r["class"] == "unreduced_fraction" and r["label"]]
    path = tmp_path / "frac.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loose = json.loads(runner.invoke(app, ["grade", str(path), "--json", "--workers", "1"]).stdout)
    strict = runner.invoke(app, ["grade", str(path), "--json", "--workers", "1",
                                 "--grader-arg", "math.reduced_fractions=true"])
    assert loose["correct"] == len(rows) and json.loads(strict.stdout)["correct"] == 0


BAD = [
    (["--grader", "math", "--timeout", "0"], "--timeout must be > 0"),
    (["--grader", "mathh"], "did you mean"),
    (["--grader", "math", "--grader-arg", "math.reduced_fraction=true"], "did you mean reduced_fractions"),
    (["--grader", "math,d1", "--grader-arg", "gsm8k.tolerance=1"], "is not in --grader"),
    (["--grader", "math", "--grader-arg", "oops"], "expected KEY=VALUE"),
    (["--grader", "d1", "--grader-arg", "task=nope"], "task must be"),
    (["--grader", "math", "--workers", "0"], "--workers must be >= 1"),
]


@pytest.mark.parametrize("args,needle", BAD, ids=[b[1][:24] for b in BAD])
def test_bad_input_exits_2_with_one_line(answers, args, needle):
    r = runner.invoke(app, ["grade", str(answers), *args])
    text = (r.output + (r.stderr or "")).replace("\n", " ")
    assert r.exit_code == 2, r.output
    assert needle in text and "Traceback" not in text


def test_empty_file_exits_2(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    r = runner.invoke(app, ["grade", str(empty)])
    assert r.exit_code == 2 and "no rows to grade" in (r.output + (r.stderr or "")), r.output
    assert len((r.stderr or r.output).strip().splitlines()) == 1


def test_describe_grader_lists_extraction_rules():
    r = runner.invoke(app, ["describe", "grader", "math"])
    assert r.exit_code == 0
    text = " ".join(r.stdout.split())  # rich wraps long lines
    for needle in ("broken closing tag", "unclosed box", "box after </answer>", "20 white hats -> 20",
                   "reduced_fractions"):
        assert needle in text, needle


def test_pathological_answers_time_out_and_are_reported(tmp_path):
    towers = ["\\frac{1}{\\frac{1}{\\frac{1}{" * 30 + "x" + "}}}" * 30, "9^{9^{9^{9^{9^{9^{9}}}}}}"]
    rows = [{"completion": f"<answer>\\boxed{{{t}}}</answer>", "gold": "3"} for t in towers]
    rows += [{"completion": f"<answer>\\boxed{{{i}}}</answer>", "gold": str(i)} for i in range(8)]
    path = tmp_path / "towers.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "v.jsonl"
    r = runner.invoke(app, ["grade", str(path), "--json", "--timeout", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    verdicts = [v["verdicts"]["math"] for v in rows_of(out)]
    # the power tower always runs past the timeout; the \frac tower is decided (wrong) in about a second on an idle
    # machine and times out on a loaded one: either way it is bounded and scores 0, and nothing hangs
    assert res["correct"] == 8 and res["timeouts"] == 1 + int(verdicts[0]["timeout"])
    assert verdicts[1]["timeout"] and verdicts[0]["score"] == verdicts[1]["score"] == 0
    assert [v["timeout"] for v in verdicts[2:]] == [False] * 8
