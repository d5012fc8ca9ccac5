"""The CLI end to end with Typer's CliRunner: listing, describe, validate, run, grade, and bad input (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from igpo_kit.cli.main import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_help_imports_no_torch():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom igpo_kit.cli.main import app\n"
            "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0, r.output\n"
            "assert 'torch' not in sys.modules\nprint('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_ls_components_and_recipes():
    r = invoke("ls", "components", "--json")
    assert r.exit_code == 0
    names = {(row["kind"], row["name"]) for row in json.loads(r.stdout)}
    assert {("sampler", "low_confidence"), ("grader", "math_verify"), ("model", "tiny")} <= names
    r = invoke("ls", "recipes", "--json")
    assert "tiny/eval.gin" in json.loads(r.stdout) and "igpo_full.gin" in json.loads(r.stdout)


def test_describe_sampler():
    r = invoke("describe", "sampler", "low_confidence", "--json")
    assert r.exit_code == 0
    d = json.loads(r.stdout)
    assert d["defaults"]["block_length"] == 32 and "temperature" in d["signature"] and d["doc"]


def test_validate_all_headline_recipes():
    r = invoke("validate", "eval/llada_paper.gin", "igpo_full.gin", "grpo.gin", "grpo_resample.gin", "tiny/eval.gin")
    assert r.exit_code == 0, r.output


def test_paper_eval_dry_run_writes_nothing(tmp_path):
    r = invoke("run", "recipes/eval/llada_paper.gin", "--dry-run", "--runs-dir", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    assert "amc/sampler.low_confidence.temperature = %AMC_TEMPERATURE" in r.stdout
    assert "AMC_TEMPERATURE = 0.5" in r.stdout and "model.llada.implementation = 'native'" in r.stdout
    assert not (tmp_path / "runs").exists()


def test_tiny_eval_run_record_and_grade(tmp_path):
    runs = tmp_path / "runs"
    r = invoke("run", "tiny/eval.gin", "--runs-dir", runs, "--json", "-b", "entry.evaluate.progress = False")
    assert r.exit_code == 0, r.output
    run_dir = Path(json.loads(r.stdout)["run_dir"])
    for f in ("config.gin", "operative_config.gin", "bindings.txt", "run.json", "metrics.jsonl", "DONE",
              "summary.json", "generations/gsm8k.jsonl"):
        assert (run_dir / f).exists(), f
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "done" and info["seed"] == 0 and "torch" in info["versions"]
    assert "git" in info and "command" in info and "environ" not in json.dumps(info).lower()
    assert (run_dir / "bindings.txt").read_text().strip() == "entry.evaluate.progress = False"
    rows = [json.loads(x) for x in (run_dir / "generations/gsm8k.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {"prompt", "completion", "extracted", "gold", "score"} <= set(rows[0])
    # same config again: the finished run is returned, not redone
    r2 = invoke("run", "tiny/eval.gin", "--runs-dir", runs, "--json", "-b", "entry.evaluate.progress = False")
    assert json.loads(r2.stdout)["run_dir"] == str(run_dir)
    # show a run; re-grade its generations
    assert "entry.evaluate" in invoke("show", run_dir).stdout
    g = invoke("grade", run_dir / "generations/gsm8k.jsonl", "--grader", "gsm8k", "--json", "--workers", "1")
    assert g.exit_code == 0 and json.loads(g.stdout)["n"] == 4


BAD = [
    (["run", "tiny/eval.gin", "-b", "gsm8k/tasks.task.grader = @grader.math_verfy()"], "unknown grader 'math_verfy'"),
    (["run", "tiny/eval.gin", "-b", "gsm8k/sampler.low_confidence.stepz = 4"], "did you mean steps"),
    (["run", "tiny/eval.gin", "-b", "SEEDD = 3"], "macro SEEDD is defined but nothing uses it"),
    (["run", "tiny/eval.gin", "-b", "gsm8k/sampler.low_confidence.steps = 'x'"], "expected int, got str"),
    (["run", "tiny/evl.gin"], "recipe not found"),
    # values and data checked before the run directory exists
    (["run", "tiny/igpo.gin", "-b", "entry.rl.hint_ratio_high = 1.5"], "entry.rl.hint_ratio_high = 1.5: must be in [0, 1]"),
    (["run", "tiny/igpo.gin", "-b", "entry.rl.hint_ratio_low = 0.7"], "hint_ratio_low = 0.7 is larger than hint_ratio_high"),
    (["run", "tiny/igpo.gin", "-b", "entry.rl.group_size = 1"], "entry.rl.group_size = 1: must be >= 2"),
    (["run", "tiny/igpo.gin", "-b", "entry.rl.grade_timeout_s = 0"], "entry.rl.grade_timeout_s = 0: must be > 0"),
    (["run", "tiny/igpo.gin", "-b", "replacement_policy.igpo.replace_fraction = -0.1"], "must be in [0, 1]"),
    (["run", "tiny/igpo.gin", "-b", "dataset.arithmetic.n = 1"], "has 1 example(s), fewer than one step's worth"),
    (["run", "tiny/igpo.gin", "-b", "dataset.arithmetic.n = 0"], "entry.rl.dataset (dataset.arithmetic()) has 0 examples"),
    (["run", "tiny/eval.gin", "-b", "gsm8k/dataset.gsm8k.limit = 0"], "(gsm8k/dataset.gsm8k()) has 0 examples"),
    (["run", "tiny/eval.gin", "-b", "model.tiny.max_positions = 40"], "more than the model's 40 positions"),
    (["run", "quickstart.gin", "-b", "model.tiny.embedding_std = 0"], "model.tiny.embedding_std = 0: must be > 0"),
    (["run", "quickstart.gin", "-b", "entry.quickstart.sft_num_threads = 0"], "sft_num_threads = 0: must be >= 1"),
    (["validate", "tiny/eval.gin", "-b", "entry.evaluat.seed = 1"], "did you mean entry.evaluate"),
    # settings objects' fields are the job's keywords, checked by name and type (brackets printed as they are)
    (["validate", "tiny/igpo.gin", "-b", "entry.rl.lora_rnk = 2"], "did you mean lora_rank"),
    (["validate", "tiny/sft.gin", "-b", "entry.sft.betas = [0.9, 'x']"],
     "entry.sft.betas = [0.9, 'x']: expected tuple[float, float], got list"),
    (["describe", "sampler", "low_confidense"], "did you mean 'low_confidence'"),
    (["ls", "component"], "unknown listing"),
]


@pytest.mark.parametrize("args,needle", BAD, ids=[b[1][:30] for b in BAD])
def test_bad_input_exits_2_with_one_clear_line(args, needle, tmp_path):
    r = runner.invoke(app, args + (["--runs-dir", str(tmp_path)] if args[0] == "run" else []))
    assert r.exit_code == 2, r.output
    assert needle in r.output.replace("\n", " ") or needle in (r.stderr or "").replace("\n", " ")
    assert "Traceback" not in r.output
    assert not any(tmp_path.iterdir())


def test_malformed_dataset_row_and_missing_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "1+1?", "answer": "#### 2"}\n{"question": "2+2?", "answer": "#### 4"}\n{oops\n')
    r = runner.invoke(app, ["run", "tiny/eval.gin", "--runs-dir", str(tmp_path / "runs"),
                            "-b", f"gsm8k/dataset.gsm8k.path = '{bad}'"])
    assert r.exit_code == 2 and f"{bad}:3" in r.output.replace("\n", ""), r.output
    nofield = tmp_path / "nofield.jsonl"
    nofield.write_text('{"question": "1+1?", "solution": "2"}\n')
    r = runner.invoke(app, ["run", "tiny/eval.gin", "--runs-dir", str(tmp_path / "runs"),
                            "-b", f"gsm8k/dataset.gsm8k.path = '{nofield}'"])
    assert r.exit_code == 2 and "answer" in r.output, r.output
    # nothing half-written: the failed run left a FAILED marker and no DONE
    assert not list((tmp_path / "runs").rglob("DONE"))


def test_trust_remote_code_needed_but_not_set(tmp_path):
    ckpt = tmp_path / "llada"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"model_type": "llada", "auto_map": {
        "AutoConfig": "configuration_llada.LLaDAConfig", "AutoModel": "modeling_llada.LLaDAModelLM"}}))
    r = runner.invoke(app, ["run", "eval/llada_paper.gin", "--runs-dir", str(tmp_path / "runs"),
                            "-b", f"MODEL_PATH = '{ckpt}'", "-b", "model.llada.implementation = 'remote'"])
    assert r.exit_code == 2, r.output
    assert "trust_remote_code" in r.output and "model.llada.trust_remote_code = True" in r.output.replace("\n", "")


def test_cli_reference_is_current():
    """cli/REFERENCE.md is what ``python -m igpo_kit.cli.reference`` renders from the app (regenerate it)."""
    from igpo_kit.cli.reference import render

    shipped = (Path(__file__).resolve().parents[2] / "cli" / "REFERENCE.md").read_text()
    assert shipped == render(), "cli/REFERENCE.md is stale: python -m igpo_kit.cli.reference > cli/REFERENCE.md"


def test_json_result_is_the_only_stdout(tmp_path):
    """Library chatter during a job (DeepSpeed's accelerator banner...) goes to stderr; stdout parses as JSON."""
    r = subprocess.run([sys.executable, "-m", "igpo_kit.cli.main", "run", "tiny/igpo.gin", "--json",
                        "--runs-dir", str(tmp_path), "-b", "entry.rl.max_steps = 2", "-b", "entry.rl.inner_iters = 1"],
                       capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "IGPO_KIT_PROGRESS_EVERY": "0"})
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout)
    assert result["steps"] == 2 and Path(result["run_dir"]).is_dir()
    # progress of the steps of max_steps, with the time left, as plain lines (stderr is not a terminal)
    progress = [ln for ln in r.stderr.splitlines() if ln.startswith("progress: rl steps")]
    assert progress[0].startswith("progress: rl steps 1/2 (50%)  elapsed ") and "left ~" in progress[0]
    assert progress[-1].startswith("progress: rl steps 2/2 (100%)  done in ")


def test_version():
    import tomllib

    r = invoke("--version")
    assert r.exit_code == 0
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert r.stdout.strip() == f"igpo-kit {version}"


def _as_console_script(*args, env=None):
    """Run the CLI as the ``igpo-kit`` console script would (program name igpo-kit)."""
    code = "import sys; sys.argv[0] = 'igpo-kit'; from igpo_kit.cli.main import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, **(env or {})})


def test_shell_completion_of_commands_and_executor_choices():
    # Typer detects the shell (shellingham); its own test switch makes the shell an argument instead
    r = _as_console_script("--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert r.returncode == 0, r.stderr
    assert "_IGPO_KIT_COMPLETE" in r.stdout and "complete" in r.stdout
    comp = {"_IGPO_KIT_COMPLETE": "complete_bash", "COMP_WORDS": "igpo-kit ru", "COMP_CWORD": "1"}
    assert _as_console_script(env=comp).stdout.split() == ["run"]
    comp = {"_IGPO_KIT_COMPLETE": "complete_bash", "COMP_WORDS": "igpo-kit run x --executor ", "COMP_CWORD": "4"}
    assert _as_console_script(env=comp).stdout.split() == ["local", "subprocess", "slurm"]


@pytest.mark.parametrize("command", [["run", "tiny/eval.gin"], ["sweep", "tiny/ablations/entropy_tau.toml"]])
def test_executor_is_one_of_its_choices(command, tmp_path):
    r = runner.invoke(app, [*command, "--executor", "slrum"], env={"IGPO_KIT_RUNS": str(tmp_path)})
    assert r.exit_code == 2
    text = " ".join((r.output + (r.stderr or "")).split()).replace("│", "")
    assert "'slrum' is not one of" in " ".join(text.split()) and "'local', 'subprocess', 'slurm'" in " ".join(text.split())
    assert not any(tmp_path.iterdir())
