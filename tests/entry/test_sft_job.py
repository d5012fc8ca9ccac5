"""entry.sft: recipes and SFT->RL specs validate; tiny SFT through the CLI, killed and resumed; RL from its model."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from igpo_kit.cli.main import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def result_json(stdout: str) -> dict:
    """The ``--json`` result; deepspeed (imported by transformers when saving a model) may log a line before it."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line == "{")
    return json.loads("\n".join(lines[start:]))


def test_sft_recipes_validate_and_paper_dry_run(tmp_path):
    r = invoke("validate", "sft_length_aligned.gin", "tiny/sft.gin")
    assert r.exit_code == 0, r.output
    r = invoke("run", "sft_length_aligned.gin", "--dry-run", "--runs-dir", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    text = r.stdout
    for line in ("entry.sft.lr = 5e-06", "entry.sft.warmup_steps = 200", "entry.sft.min_lr = 1e-06",
                 "entry.sft.decay_fraction = 0.1", "entry.sft.epochs = 100.0", "entry.sft.max_length = %MAX_LENGTH",
                 "MAX_LENGTH = 1024", "trust_remote_code = True", "dataset.jsonl.trace_field = 'trace'"):
        assert line in text, line
    assert not (tmp_path / "runs").exists()


def test_sft_then_rl_specs_take_the_checkpoint_path(tmp_path):
    """The RL stage of Fig. 5b / App. E gets the SFT model from --axis / -b; the placeholder never survives."""
    from igpo_kit.sweep import load_spec, plan
    from igpo_kit.sweep.spec import add_axes

    spec = add_axes(load_spec(REPO / "recipes/tiny/ablations/sft_traces_rl.toml"),
                    ["model.tiny.path='/ck/rewritten/model','/ck/original/model'"])
    cells = plan(spec, tmp_path / "a").cells
    assert len(cells) == 4 and {c.cell.arm for c in cells} == {"igpo", "grpo"}
    assert sorted(c.config_text.count("/ck/rewritten/model") for c in cells) == [0, 0, 1, 1]
    assert not any("SET-ME" in c.config_text for c in cells)

    spec = load_spec(REPO / "recipes/ablations/sft_hint_traces_rl.toml")
    spec.bindings += ["MODEL_PATH = '/ck/sft_hint/model'"]  # what `igpo-kit sweep ... -b` does
    cells = plan(spec, tmp_path / "b").cells
    assert len(cells) == 6
    for c in cells:
        sft_model = "MODEL_PATH = '/ck/sft_hint/model'" in c.config_text
        assert sft_model == (c.cell.arm == "sft_grpo"), c.cell.arm
        assert "SET-ME" not in c.config_text
    assert all("replacement_policy.none()" in c.config_text for c in cells if c.cell.arm == "sft_grpo")

    sft_cells = plan(load_spec(REPO / "recipes/ablations/sft_traces.toml"), tmp_path / "c").cells
    original = next(c for c in sft_cells if c.cell.arm == "original")
    assert "MAX_LENGTH = 4096" in original.config_text and "@dataset.openr1_math()" in original.config_text


def _wait_for(path_glob: str, root: Path, proc: subprocess.Popen, log: Path, timeout_s: float = 120.0) -> Path:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        hits = list(root.glob(path_glob))
        if hits:
            return hits[0]
        if proc.poll() is not None:
            raise AssertionError(f"the SFT process ended (rc {proc.returncode}) before checkpointing: "
                                 f"{log.read_text()[-2000:]}")
        time.sleep(0.02)
    raise AssertionError(f"no {path_glob} under {root} after {timeout_s} s")


@pytest.fixture
def one_torch_thread():
    """Tiny models: one intra-op thread is as fast and avoids oversubscribing a busy CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_tiny_sft_killed_resumed_then_rl_from_its_model(tmp_path, one_torch_thread):
    import torch

    from igpo_kit.models.tiny import tiny

    runs = tmp_path / "runs"
    args = ["run", "tiny/sft.gin", "--runs-dir", str(runs), "--json",
            "-b", "entry.sft.max_steps = 10", "-b", "entry.sft.checkpoint_every = 3"]
    # the first start is killed (SIGKILL) as soon as its first checkpoint is complete
    log = tmp_path / "killed.log"
    with open(log, "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "igpo_kit.cli.main", *args], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=stderr, env={**os.environ, "OMP_NUM_THREADS": "1"})
        try:
            latest = _wait_for("sft/*/checkpoints/latest", runs, proc, log)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    run_dir = latest.parents[1]
    assert not (run_dir / "DONE").exists() and not (run_dir / "model").exists()

    # the same command again resumes the same run directory from the checkpoint
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    result = result_json(r.stdout)
    assert Path(result["run_dir"]) == run_dir
    assert result["resumed_from"] is not None and result["resumed_from"] >= 3
    assert result["step"] == result["total_steps"] == 10

    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [rec["step"] for rec in records] == list(range(1, 11))  # each step exactly once across the kill
    assert all(math.isfinite(rec["loss"]) and math.isfinite(rec["grad_norm"]) for rec in records)
    first, last = (sum(rec["nll"] for rec in part) / 3 for part in (records[:3], records[-3:]))
    assert last < first, (first, last)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "done" and len(info["starts"]) == 2
    stats = json.loads((run_dir / "length_stats.json").read_text())
    assert stats["rows"] == 64 and stats["dropped"] == {"too_long": 0, "no_trace": 0}
    assert {"sequence_length", "answer_length", "prompt_length"} <= set(stats)

    # the model directory is a tiny model the loader reads back, trained away from its initialisation
    model_dir = Path(result["model_dir"])
    assert model_dir == run_dir / "model"
    trained = tiny(path=str(model_dir)).network.state_dict()
    init = tiny(seed=0).network.state_dict()
    assert trained.keys() == init.keys() and any(not torch.equal(trained[k], init[k]) for k in init)

    # ... and the initial model of an RL recipe
    r = invoke("run", "tiny/igpo.gin", "--runs-dir", runs, "--json", "-b", f"model.tiny.path = '{model_dir}'",
               "-b", "entry.rl.max_steps = 1", "-b", "entry.rl.inner_iters = 1", "-b", "entry.rl.prompts_per_step = 1",
               "-b", "entry.rl.group_size = 2")
    assert r.exit_code == 0, r.output
    rl = result_json(r.stdout)
    assert rl["steps"] == 1 and f"'{model_dir}'" in (Path(rl["run_dir"]) / "config.gin").read_text()


def test_sft_refuses_a_multi_task_launch(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")
    r = runner.invoke(app, ["run", "tiny/sft.gin", "--runs-dir", str(tmp_path / "runs")])
    assert r.exit_code == 2 and "one process" in r.output, r.output
    assert not list((tmp_path / "runs").rglob("model"))


@pytest.mark.parametrize("binding,needle", [("entry.sft.max_length = 100", "no SFT example fits the budget"),
                                            ("entry.sft.betas = [0.9]", "two numbers")])
def test_sft_config_errors_exit_2(binding, needle, tmp_path):
    r = runner.invoke(app, ["run", "tiny/sft.gin", "--runs-dir", str(tmp_path / "runs"), "-b", binding])
    assert r.exit_code == 2, r.output
    assert needle in r.output.replace("\n", " ")
