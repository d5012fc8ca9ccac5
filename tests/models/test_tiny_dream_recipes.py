"""recipes/tiny/dream_sft.gin then recipes/tiny/dream_igpo.gin from its model, end to end through the CLI: SFT
(NELBO), sampling with inpainting, mean-field log-probs and the RL loop on the native Dream class (shifted logits)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from typer.testing import CliRunner

from igpo_kit.cli.main import app


def _run(*args) -> dict:
    r = CliRunner().invoke(app, ["run", *[str(a) for a in args], "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()  # the --json result (a library may log a line before it)
    return json.loads("\n".join(lines[next(i for i, line in enumerate(lines) if line == "{"):]))


def test_tiny_dream_sft_then_igpo(tmp_path):
    from igpo_kit.models.dream import DreamModel
    from igpo_kit.models.tiny import tiny

    sft = _run("tiny/dream_sft.gin", "--runs-dir", tmp_path, "-b", "entry.sft.max_steps = 6",
               "-b", "entry.sft.checkpoint_every = 3")
    records = [json.loads(x) for x in (Path(sft["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 6 and all(math.isfinite(r["loss"]) for r in records)
    lm = tiny(path=sft["model_dir"])
    assert type(lm.network) is DreamModel and lm.logits_shift == 1
    assert lm.tokenizer.convert_tokens_to_ids("<|im_start|>") == lm.tokenizer("<|im_start|>", add_special_tokens=False)["input_ids"][0]
    init = tiny(architecture="dream").network.state_dict()
    assert any(not torch.equal(v, init[k]) for k, v in lm.network.state_dict().items())

    rl = _run("tiny/dream_igpo.gin", "--runs-dir", tmp_path, "-b", f"model.tiny.path = '{sft['model_dir']}'",
              "-b", "entry.rl.max_steps = 2", "-b", "entry.rl.inner_iters = 1")
    assert rl["steps"] == 2
    metrics = [json.loads(x) for x in (Path(rl["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert metrics and all(math.isfinite(m["loss"]) for m in metrics if "loss" in m)
    assert any(m.get("all_wrong_ratio_before") is not None for m in metrics)
