"""Every tiny experiment spec (recipes/tiny/ablations) runs to the end on CPU: all cells DONE, a report renders.

RL cells are shortened to one optimizer step (the specs' own axes are untouched); SFT cells to two steps. The
``*_rl`` stage-2 specs need an SFT checkpoint: they run from the checkpoints their stage-1 spec writes, passed
the way the spec headers tell a user to (``--axis``/``-b model.tiny.path=...``).

The specs based on ``tiny/igpo_sft.gin`` / ``tiny/eval_sft.gin`` start from the quickstart's SFT model: here the
reduced SFT of the session (the ``sft_start`` fixture, built once, selected by ``$IGPO_KIT_RUNS`` and its macro
bindings), with smaller groups and fewer denoising steps in the one RL step; their cells run in this process
(the parallel subprocesses of ``--max-parallel`` are tested with the other specs and tests/sweep/test_sweep_e2e.py,
concurrent SFT builders in tests/sft/test_cache.py). ``sample_matched.toml`` runs four RL steps of 3 prompts
instead, and its arms must differ: GRPO replaces nothing (K = 0) while IGPO rescues all-wrong groups (K > 0).
"""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from igpo_kit.cli.main import app

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "recipes" / "tiny" / "ablations"
SHORT = {"rl": ["entry.rl.max_steps = 1", "entry.rl.inner_iters = 1"], "sft": ["entry.sft.max_steps = 2"],
         "evaluate": []}
SFT_START_BASES = ("tiny/igpo_sft.gin", "tiny/eval_sft.gin")
# one short RL step from the SFT start: G = 4 and 16 denoising steps (the SFT cache key does not depend on them)
SHORT_FROM_SFT = {"rl": ["entry.rl.group_size = 4", "rollout/sampler.low_confidence.steps = 16"],
                  "evaluate": ["test/dataset.arithmetic.n = 8"]}
runner = CliRunner()


def run_spec(spec: Path, sweep_dir: Path, *extra: str, short: bool = True, parallel: int = 2) -> dict:
    from igpo_kit.sweep import load_spec, plan

    job = "rl" if spec.stem.endswith("_rl") else plan(load_spec(spec), sweep_dir).cells[0].job
    args = ["sweep", str(spec), "--sweep-dir", str(sweep_dir), "--max-parallel", str(parallel), *extra]
    for b in SHORT[job] if short else []:
        args += ["-b", b]
    r = runner.invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    manifest = json.loads((sweep_dir / "sweep_manifest.json").read_text())
    assert manifest["cells"] and all(c["status"] == "done" for c in manifest["cells"]), manifest["cells"]
    return manifest


def from_sft_start(spec: Path) -> bool:
    from igpo_kit.sweep import load_spec

    return load_spec(spec).base in SFT_START_BASES


def sft_start_args(sft_start, monkeypatch, job: str | None = None) -> list[str]:
    """Select the session's reduced SFT start: ``$IGPO_KIT_RUNS`` (the cache root) and its macro bindings."""
    monkeypatch.setenv("IGPO_KIT_RUNS", str(sft_start.root))
    args = []
    for b in sft_start.bindings + (SHORT_FROM_SFT.get(job, []) if job else []):
        args += ["-b", b]
    return args


def report(sweep_dir: Path, out: Path) -> None:
    r = runner.invoke(app, ["report", str(sweep_dir), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "report.md").is_file()


STAGE1 = sorted(p.name for p in TINY.glob("*.toml") if not p.stem.endswith("_rl") and p.stem != "sample_matched")


@pytest.mark.parametrize("name", STAGE1)
def test_tiny_spec_runs(name, tmp_path, request, monkeypatch):
    spec = TINY / name
    extra, parallel = [], 2
    if from_sft_start(spec):  # in this process: cells start in ~1 s instead of ~15 s (imports) on a busy machine
        from igpo_kit.sweep import load_spec, plan

        job = plan(load_spec(spec), tmp_path / "plan").cells[0].job
        extra, parallel = sft_start_args(request.getfixturevalue("sft_start"), monkeypatch, job), 1
    manifest = run_spec(spec, tmp_path / "sweep", *extra, parallel=parallel)
    report(tmp_path / "sweep", tmp_path / "report")
    if name.startswith("sft_"):  # stage 2 from this stage's checkpoint(s)
        models = [str(tmp_path / "sweep" / c["run_dir"] / "model") for c in manifest["cells"]]
        assert all(Path(m, "config.json").is_file() for m in models)
        stage2 = TINY / name.replace(".toml", "_rl.toml")
        if len(models) > 1:  # Fig. 5b: one RL arm per SFT checkpoint
            run_spec(stage2, tmp_path / "rl", "--axis", "model.tiny.path=" + ",".join(f"'{m}'" for m in models))
        else:  # App. E: the SFT model for GRPO
            run_spec(stage2, tmp_path / "rl", "-b", f"model.tiny.path = '{models[0]}'")


def test_sample_matched_arms_differ_from_the_sft_start(sft_start, tmp_path, monkeypatch):
    """From a random model every arm logs accuracy 0 and K = 0; from the SFT start GRPO still replaces nothing
    while IGPO inpaints hints into all-wrong groups and keeps verified-correct rollouts (K > 0)."""
    spec = TINY / "sample_matched.toml"
    assert from_sft_start(spec)
    sweep = tmp_path / "sweep"
    # 4 steps of 3 prompts: 12 groups per arm (the reduced SFT rescues groups in 2 of IGPO's 4 steps)
    manifest = run_spec(spec, sweep, "-b", "entry.rl.max_steps = 4", "-b", "entry.rl.prompts_per_step = 3",
                        *sft_start_args(sft_start, monkeypatch), short=False, parallel=1)
    report(sweep, tmp_path / "report")
    assert len(list((sft_start.root / "quickstart" / "_cache").glob("sft-*"))) == 1  # the session's SFT, no new one
    metrics = {}
    for c in manifest["cells"]:
        metrics[c["method"]] = [json.loads(line) for line in (sweep / c["run_dir"] / "metrics.jsonl").open()]
    assert sorted(metrics) == ["grpo", "grpo_resample", "igpo"]
    assert all(len(m) == 4 for m in metrics.values())
    assert any(s["accuracy"] > 0 for m in metrics.values() for s in m)  # never from a random model
    assert all(s["replaced_rows_K"] == 0 for s in metrics["grpo"])
    assert any(s["replaced_rows_K"] > 0 for s in metrics["igpo"]), [s["replaced_rows_K"] for s in metrics["igpo"]]
    after = {arm: [s["all_wrong_ratio_after"] for s in m] for arm, m in metrics.items()}
    assert after["igpo"] != after["grpo"], after
