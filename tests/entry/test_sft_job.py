"""entry.sft: recipes and SFT->RL specs validate; tiny SFT through the CLI, killed and resumed; RL from its model;
data parallel: 2 processes (torchrun, gloo) train exactly as 1 process with twice the accumulation, and resume;
DeepSpeed ZeRO-2 (one CPU process) trains as the plain loop and resumes from its shards."""

from __future__ import annotations

import json
import math
import os
import shutil
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
                 "MAX_LENGTH = 1024", "model.llada.implementation = 'native'", "dataset.jsonl.trace_field = 'trace'",
                 # Table 2 per device: 4 rows x 8 accumulation, x 64 tasks = 2048 rows; bf16 + ZeRO-2 on GPU
                 "entry.sft.batch_size = 4", "entry.sft.grad_accum = 8", "entry.sft.mixed_precision = 'auto'",
                 "entry.sft.deepspeed_config = 'recipes/deepspeed/zero2.json'", "model.llada.device = 'cpu'"):
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


def test_sft_deepspeed_over_cpu_processes_is_refused(tmp_path, monkeypatch):
    """ZeRO-2 over several CPU processes cannot run through accelerate: a config error before any process group."""
    monkeypatch.setenv("WORLD_SIZE", "8")
    r = runner.invoke(app, ["run", "tiny/sft.gin", "--runs-dir", str(tmp_path / "runs"),
                            "-b", "entry.sft.deepspeed_config = 'recipes/deepspeed/zero2.json'"])
    assert r.exit_code == 2 and "needs GPUs" in r.output.replace("\n", " "), r.output
    assert not list((tmp_path / "runs").rglob("model"))


@pytest.mark.parametrize("binding,needle", [
    ("entry.sft.max_length = 100", "no SFT example fits the budget"),
    ("entry.sft.betas = [0.9]", "entry.sft.betas = [0.9]: expected tuple[float, float], got list"),  # validate
    ("entry.sft.mixed_precision = 'fp16'", "mixed_precision must be one of")])
def test_sft_config_errors_exit_2(binding, needle, tmp_path):
    r = runner.invoke(app, ["run", "tiny/sft.gin", "--runs-dir", str(tmp_path / "runs"), "-b", binding])
    assert r.exit_code == 2, r.output
    assert needle in r.output.replace("\n", " ")


# --- data parallel -------------------------------------------------------------------------------------------------

DP_BINDINGS = ("entry.sft.max_steps = 4", "entry.sft.checkpoint_every = 2")  # tiny/sft.gin: 8 rows per micro-batch
ZERO2 = "entry.sft.deepspeed_config = 'recipes/deepspeed/zero2.json'"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--rdzv-backend", "c10d",
            "--rdzv-endpoint", "localhost:0"]


def _env() -> dict:
    e = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
         "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                "ACCELERATE_MIXED_PRECISION"):
        e.pop(var, None)
    return e


def _start(runs: Path, bindings, log: Path, launcher=None) -> subprocess.Popen:
    cmd = [*(launcher or [sys.executable]), "-m", "igpo_kit.cli.main", "run", "tiny/sft.gin", "--runs-dir", str(runs)]
    for b in (*DP_BINDINGS, *bindings):
        cmd += ["-b", b]
    return subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _finish(procs: dict, logs: dict, timeout: float = 240) -> None:
    t0 = time.monotonic()
    try:
        for name, proc in procs.items():
            rc = proc.wait(timeout=max(1.0, timeout - (time.monotonic() - t0)))
            assert rc == 0, f"{name}: rc {rc}\n{logs[name].read_text()[-4000:]}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def _sft_dir(runs: Path) -> Path:
    (d,) = list((runs / "sft").iterdir())
    return d


def _records(d: Path) -> list[dict]:
    return [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]


def _untimed(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in records]


def _weights(d: Path) -> dict:
    from igpo_kit.models.tiny import tiny

    return tiny(path=str(d / "model")).network.state_dict()


def _weights_init() -> dict:
    from igpo_kit.models.tiny import tiny

    return tiny(seed=0).network.state_dict()


@pytest.fixture(scope="module")
def dp_runs(tmp_path_factory):
    """Tiny SFT, 4 optimizer steps of 16 rows, checkpoints at steps 2 and 4, three runs started together:
    ``dp``: 2 processes (torchrun, gloo) x grad_accum 1; ``one``: 1 process x grad_accum 2; ``zero``: 1 process x
    grad_accum 2 under DeepSpeed ZeRO-2. Then ``dp`` and ``zero`` are rewound to their step-2 checkpoint (as if killed
    right after writing it: ``latest`` names step_2, no DONE / model) and started again with the same command."""
    root = tmp_path_factory.mktemp("sft_dp")
    logs = {k: root / f"{k}.log" for k in ("dp", "one", "zero", "dp2", "zero2")}
    spec = {"dp": (["entry.sft.grad_accum = 1"], TORCHRUN), "one": (["entry.sft.grad_accum = 2"], None),
            "zero": (["entry.sft.grad_accum = 2", ZERO2], None)}
    t0 = time.monotonic()
    _finish({k: _start(root / k, b, logs[k], launcher) for k, (b, launcher) in spec.items()}, logs)
    first = {}
    for k in ("dp", "zero"):
        d = _sft_dir(root / k)
        first[k] = {"records": _records(d), "weights": _weights(d)}
        for name in ("DONE", "result.json"):
            (d / name).unlink()
        shutil.rmtree(d / "model")
        (d / "checkpoints" / "latest").write_text("step_2\n")
    _finish({f"{k}2": _start(root / k, spec[k][0], logs[f"{k}2"], spec[k][1]) for k in ("dp", "zero")}, logs)
    return {"root": root, "logs": logs, "first": first, "seconds": time.monotonic() - t0,
            **{k: _sft_dir(root / k) for k in spec}}


def test_two_process_sft_from_the_cli(dp_runs):
    """torchrun, 2 CPU processes: rank 0 alone writes one metrics.jsonl (each step once, also across the resume), the
    checkpoints (both ranks' generator states) and the final model; the losses are finite."""
    import torch

    d = dp_runs["dp"]
    records = _records(d)
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) and math.isfinite(r["nll"]) for r in records)
    assert [r["epoch"] for r in records] == [0.25, 0.5, 0.75, 1.0]  # 16 of the 64 rows per step: the global batch
    assert (d / "DONE").exists() and (d / "model" / "config.json").exists() and not (d / "model.tmp").exists()
    info = json.loads((d / "run.json").read_text())
    assert info["status"] == "done" and len(info["starts"]) == 2
    assert json.loads((d / "length_stats.json").read_text())["rows"] == 64
    state = torch.load(d / "checkpoints/step_4/state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["generators"]) == 2 and state["config"]["world_size"] == 2
    assert torch.equal(state["generators"][0]["noise"], state["generators"][1]["noise"])  # both walk the global batch
    assert dp_runs["logs"]["dp2"].read_text().count("done: ") == 2  # both ranks ran the job


def test_two_processes_equal_one_process_with_twice_the_accumulation(dp_runs):
    """Data parallelism is exact: 2 ranks x grad_accum 1 == 1 rank x grad_accum 2 (same rows, same noise per row)."""
    import torch

    a, b = _weights(dp_runs["dp"]), _weights(dp_runs["one"])
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=1e-5), (k, float((a[k] - b[k]).abs().max()))
    init = _weights_init()
    assert any(not torch.allclose(b[k], init[k], atol=1e-4) for k in b)  # it trained
    for r2, r1 in zip(_records(dp_runs["dp"]), _records(dp_runs["one"]), strict=True):
        assert r2["step"] == r1["step"] and r2["lr"] == r1["lr"] and r2["epoch"] == r1["epoch"]
        for key in ("loss", "nll", "grad_norm", "mask_rate"):
            assert r2[key] == pytest.approx(r1[key], rel=1e-5, abs=1e-7), key


def test_two_process_resume_is_exact(dp_runs):
    """Both ranks resume from `latest` (step 2): the same weights and records as the uninterrupted run."""
    import torch

    d, first = dp_runs["dp"], dp_runs["first"]["dp"]
    assert json.loads((d / "result.json").read_text())["resumed_from"] == 2
    assert _untimed(_records(d)) == _untimed(first["records"])
    again = _weights(d)
    assert all(torch.equal(again[k], first["weights"][k]) for k in again)


def test_deepspeed_zero2_sft_equals_plain_and_resumes(dp_runs):
    """ZeRO-2 through accelerate (one CPU process, float32) with grad_accum 2 (DeepSpeed accumulation boundaries): the
    plain loop's training; checkpoints hold the shards, a resume from them is exact."""
    import torch

    d, first = dp_runs["zero"], dp_runs["first"]["zero"]
    shards = sorted(p.name for p in (d / "checkpoints/step_4/model/deepspeed/ds").iterdir())
    assert shards == ["mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt"]
    assert not (d / "checkpoints/deepspeed_staging").exists()
    plain = _weights(dp_runs["one"])
    for k, v in first["weights"].items():
        assert torch.allclose(v, plain[k], rtol=0, atol=1e-5), k
    for rz, r1 in zip(first["records"], _records(dp_runs["one"]), strict=True):
        assert rz["loss"] == pytest.approx(r1["loss"], rel=1e-5) and rz["lr"] == r1["lr"]
        assert rz["grad_norm"] == pytest.approx(r1["grad_norm"], rel=1e-5)
    assert _untimed(_records(d)) == _untimed(first["records"])
    again = _weights(d)
    assert all(torch.equal(again[k], first["weights"][k]) for k in again)
