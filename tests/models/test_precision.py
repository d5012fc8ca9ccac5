"""bf16 compute with fp32 master weights: a full fine-tuning update at lr 5e-7 (the paper's RL learning rate) changes
the weights, where the same AdamW step on bf16 weights rounds away. Runs the SFT trainer under accelerate's bf16
mixed precision on CPU, in a fresh process (accelerate allows one precision per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from igpo_kit.models.precision import fp32_master_weights

_SCRIPT = r"""
import json, sys, torch
from igpo_kit.data.prompts import plain
from igpo_kit.data.synthetic import arithmetic
from igpo_kit.models.tiny import tiny
from igpo_kit.sft.settings import SFTSettings
from igpo_kit.sft.trainer import train_sft

torch.set_num_threads(1)
model = tiny(seed=0, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
model.network.to(torch.bfloat16)  # as loaded with dtype='bfloat16'
# every weight but the input embedding, whose rows of tokens absent from the batch get no gradient
before = {n: p.detach().clone() for n, p in model.network.named_parameters() if "embed_tokens" not in n}
train_sft(model, arithmetic(4, difficulty=1, seed=0, trace_style="short"), plain(), run_dir=sys.argv[1],
          settings=SFTSettings(max_length=160, batch_size=2, max_steps=1, lr=5e-7, min_lr=5e-7, warmup_steps=0,
                               decay_fraction=0.0, weight_decay=0.0, mixed_precision="bf16"))
after = dict(model.network.named_parameters())
print(json.dumps({
    "dtypes": sorted({str(p.dtype) for p in after.values() if p.requires_grad}),
    "changed": sum(int((after[n].detach() != before[n].float()).sum()) for n in before),
    "total": sum(p.numel() for p in before.values()),
}))
"""


def test_a_5e_7_update_changes_fp32_master_weights_under_bf16_compute(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path / "run")], capture_output=True, text=True,
                         env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["dtypes"] == ["torch.float32"]  # master weights (and so AdamW's moments) in float32
    assert out["changed"] > 0.9 * out["total"], out  # Adam moves (almost) every weight by ~lr


def test_the_same_update_on_bf16_weights_rounds_away():
    """What the master weights fix: AdamW at lr 5e-7 on bf16 weights of a trained model's scale leaves them as they
    were (bf16's spacing at 0.01 is ~6e-5)."""
    g = torch.Generator().manual_seed(0)
    sign = torch.randint(0, 2, (64, 64), generator=g) * 2 - 1
    w = torch.nn.Parameter((sign * (0.01 + 0.04 * torch.rand(64, 64, generator=g))).bfloat16())  # |w| in [0.01, 0.05]
    before = w.detach().clone()
    w.grad = torch.randn(64, 64, generator=g).bfloat16()
    torch.optim.AdamW([w], lr=5e-7, weight_decay=0.0).step()
    assert torch.equal(w.detach(), before)
    master = torch.nn.Parameter(before.clone())
    assert fp32_master_weights(torch.nn.ParameterList([master])) == 64 * 64 and master.dtype == torch.float32
    master.grad = w.grad.float()
    torch.optim.AdamW([master], lr=5e-7, weight_decay=0.0).step()
    assert (master.detach() != before.float()).float().mean() > 0.99


def test_frozen_weights_stay_in_bf16():
    lin = torch.nn.Linear(4, 4).bfloat16()
    lin.bias.requires_grad_(False)
    assert fp32_master_weights(lin) == 16
    assert lin.weight.dtype == torch.float32 and lin.bias.dtype == torch.bfloat16
