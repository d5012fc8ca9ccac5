"""entry.rewrite: recipes validate; the tiny recipe end to end with a local causal LM; resume over a shared output;
the paper recipe against an unreachable endpoint fails resumably and never writes the key."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from igpo_kit.cli.main import app

runner = CliRunner()
SECRET = "sk-entry-test-SECRET-42"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def result_json(stdout: str) -> dict:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line == "{")
    return json.loads("\n".join(lines[start:]))


def test_rewrite_recipes_validate_and_hold_no_key(tmp_path):
    r = invoke("validate", "rewrite.gin", "tiny/rewrite.gin")
    assert r.exit_code == 0, r.output
    r = invoke("run", "rewrite.gin", "--dry-run", "--runs-dir", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    for line in ("rewrite_backend.openai_http.api_key_env = 'REWRITER_API_KEY'", "entry.rewrite.min_words = 100",
                 "entry.rewrite.max_words = 1000", "dataset.openr1_math.trace_source = 'generation'",
                 "dataset.openr1_math.name = 'default'"):
        assert line in r.stdout, line
    assert not (tmp_path / "runs").exists()


def test_tiny_rewrite_job_and_resume_over_a_shared_output(tiny_causal_dir, tmp_path):
    runs = tmp_path / "runs"
    common = ["--runs-dir", runs, "--json", "-b", f"REWRITER_PATH = '{tiny_causal_dir}'",
              "-b", "rewrite_backend.transformers_causal.max_new_tokens = 8"]
    r = invoke("run", "tiny/rewrite.gin", *common, "-b", "dataset.arithmetic.n = 3")
    assert r.exit_code == 0, r.output
    res = result_json(r.stdout)
    run_dir = Path(res["run_dir"])
    # a random model cannot follow the App. I format: every reply is checked, rejected and counted
    assert (res["total"], res["attempted"], res["failed"], res["written"]) == (3, 3, 0, 0)
    assert res["dropped_format"] + res["dropped_answer"] == 3 and res["length_unit"] == "tokens"
    assert Path(res["out_path"]) == run_dir / "rewritten.jsonl"
    rejected = [json.loads(line) for line in (run_dir / "rewritten.rejected.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rejected] == [f"arithmetic/train/{i}" for i in range(3)]
    assert (run_dir / "rewritten.lengths.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((run_dir / "rewritten.report.json").read_text())["attempted"] == 3
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["summary"] and metrics[-1]["dropped_format"] + metrics[-1]["dropped_answer"] == 3
    assert (run_dir / "DONE").exists()

    # another run writing to the same output only sends the rows it has not seen
    r = invoke("run", "tiny/rewrite.gin", *common, "-b", "dataset.arithmetic.n = 5",
               "-b", f"entry.rewrite.out_path = '{res['out_path']}'")
    assert r.exit_code == 0, r.output
    res2 = result_json(r.stdout)
    assert res2["run_dir"] != res["run_dir"]
    assert (res2["skipped_rejected"], res2["attempted"]) == (3, 2)
    assert len((run_dir / "rewritten.rejected.jsonl").read_text().splitlines()) == 5


def test_paper_recipe_backend_failures_fail_the_run_resumably(tmp_path, monkeypatch):
    monkeypatch.setenv("REWRITER_API_KEY", SECRET)
    data = tmp_path / "openr1.jsonl"
    rows = [{"problem": f"What is {i}+{i}?", "answer": str(2 * i), "solution": f"{i}+{i}={2 * i}",
             "generations": [f"<think>Okay, {i}+{i}... wait, let me check: {2 * i}.</think> {2 * i}"]}
            for i in range(2)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "rewritten.jsonl"
    args = ["run", "rewrite.gin", "--runs-dir", tmp_path / "runs", "-b", f"DATA_PATH = '{data}'",
            "-b", "REWRITER_URL = 'http://127.0.0.1:9/v1'", "-b", f"REWRITTEN_TRACES = '{out}'",
            "-b", "entry.rewrite.tokenizer_path = None", "-b", "rewrite_backend.openai_http.max_retries = 0",
            "-b", "rewrite_backend.openai_http.timeout_s = 5"]
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 1, r.output
    assert "2 of 2 rows failed at the backend" in r.output.replace("\n", " ")
    (run_dir,) = (tmp_path / "runs" / "rewrite").iterdir()
    assert (run_dir / "FAILED").exists() and not (run_dir / "DONE").exists()
    report = json.loads((tmp_path / "rewritten.report.json").read_text())
    assert (report["failed"], report["written"], report["length_unit"]) == (2, 0, "words")
    # failed rows are not recorded, so the same command retries them
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 1 and json.loads((tmp_path / "rewritten.report.json").read_text())["attempted"] == 2
    files = [p for p in list(tmp_path.rglob("*")) if p.is_file()]
    assert not any(SECRET.encode() in p.read_bytes() for p in files)
