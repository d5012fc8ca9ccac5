"""Every tiny experiment spec (recipes/tiny/ablations) runs to the end on CPU: all cells DONE, a report renders.

RL cells are shortened to one optimizer step (the specs' own axes are untouched); SFT cells to two steps. The
``*_rl`` stage-2 specs need an SFT checkpoint: they run from the checkpoints their stage-1 spec writes, passed
the way the spec headers tell a user to (``--axis``/``-b model.tiny.path=...``).
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
runner = CliRunner()


def run_spec(spec: Path, sweep_dir: Path, *extra: str) -> dict:
    from igpo_kit.sweep import load_spec, plan

    job = "rl" if spec.stem.endswith("_rl") else plan(load_spec(spec), sweep_dir).cells[0].job
    args = ["sweep", str(spec), "--sweep-dir", str(sweep_dir), "--max-parallel", "2", *extra]
    for b in SHORT[job]:
        args += ["-b", b]
    r = runner.invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    manifest = json.loads((sweep_dir / "sweep_manifest.json").read_text())
    assert manifest["cells"] and all(c["status"] == "done" for c in manifest["cells"]), manifest["cells"]
    return manifest


STAGE1 = sorted(p.name for p in TINY.glob("*.toml") if not p.stem.endswith("_rl"))


@pytest.mark.parametrize("name", STAGE1)
def test_tiny_spec_runs(name, tmp_path):
    manifest = run_spec(TINY / name, tmp_path / "sweep")
    r = runner.invoke(app, ["report", str(tmp_path / "sweep"), "--out", str(tmp_path / "report")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "report" / "report.md").is_file()
    if name.startswith("sft_"):  # stage 2 from this stage's checkpoint(s)
        models = [str(tmp_path / "sweep" / c["run_dir"] / "model") for c in manifest["cells"]]
        assert all(Path(m, "config.json").is_file() for m in models)
        stage2 = TINY / name.replace(".toml", "_rl.toml")
        if len(models) > 1:  # Fig. 5b: one RL arm per SFT checkpoint
            run_spec(stage2, tmp_path / "rl", "--axis", "model.tiny.path=" + ",".join(f"'{m}'" for m in models))
        else:  # App. E: the SFT model for GRPO
            run_spec(stage2, tmp_path / "rl", "-b", f"model.tiny.path = '{models[0]}'")
