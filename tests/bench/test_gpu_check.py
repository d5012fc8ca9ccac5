"""bench/gpu_check.py: its ``--smoke`` path (the GPU check's code on a tiny config, CPU) runs end to end and writes
every figure the GPU run reports; the offline LLaDA-sized tokenizer decodes every id the model can predict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_smoke_runs_the_gpu_check_code_path(tmp_path):
    out = tmp_path / "check.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):  # a fresh single process
        env.pop(k, None)
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--smoke", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["config"] == "smoke" and result["device"] == "cpu" and result["model"].startswith("native LLaDA")
    measured = [r for r in result["sampler"] if "skipped" not in r]
    assert sorted((r["sampler"], r["batch"]) for r in measured) == [("dual_cache", 2), ("dual_cache", 4),
                                                                    ("low_confidence", 2), ("low_confidence", 4)]
    assert all(r["tok_s"] > 0 and r["estimate_gb"] > 0 and r["peak_gb"] is None for r in measured)
    step = result["igpo_step"]
    assert step["triggered_groups"] >= 1  # random weights: every group is wrong, so inpainting runs
    assert step["rollouts_sampled"] == 2 * result["settings"]["group_size"]
    assert all(step["parts"][k] > 0 for k in ("rollout_s", "inpaint_s", "logprob_s", "update_s", "step_s"))
    assert step["lora_rank"] == 4 and step["trained_params"] > 0
    assert step["estimate"]["peak_gb"] > step["estimate"]["weights_gb"] > 0
    assert "trainable weights only" in step["checkpoint"]
    assert "IGPO step" in proc.stdout and "tokens/s" in proc.stdout and "ZeRO-2" in proc.stdout


def test_llada_sized_tokenizer_has_llada_ids_and_decodes_any_id():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from gpu_check import EOS_ID, EOT_ID, MASK_ID, llada_tokenizer
    finally:
        sys.path.remove(str(ROOT / "bench"))
    tok = llada_tokenizer(126464)
    assert len(tok) == 126464
    assert (tok.mask_token_id, tok.eos_token_id, tok.convert_tokens_to_ids("<|eot_id|>")) == (MASK_ID, EOS_ID, EOT_ID)
    text = tok.apply_chat_template([{"role": "user", "content": "2+3?"}], add_generation_prompt=True, tokenize=False)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True).endswith("2+3?assistant\n\n")
    assert tok.decode([126000, EOS_ID, MASK_ID], skip_special_tokens=True) == "<|reserved_126000|>"
