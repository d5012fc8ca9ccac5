"""What the kit saves for a LLaDA / Dream run (``export_model``, the SFT/RL final ``model/``) reloads in a fresh
process with the kit and with transformers + the checkpoint's own code (the upstream ``.py`` files and ``auto_map``
are written beside the weights, copied from the folder the model was loaded from); a remote-code model's
``save_pretrained`` does the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from igpo_kit.components import model as models
from igpo_kit.sft.trainer import export_model

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys, torch
path, family, ids = sys.argv[1], sys.argv[2], torch.tensor([json.loads(sys.argv[3])])
# 1. transformers + the checkpoint's own .py files (repaired in memory for transformers 5), no kit model classes
from igpo_kit.models.remote import load_remote
net = load_remote(path, dtype=torch.float32)
assert type(net).__module__.startswith('transformers_modules'), type(net)
assert 'igpo_kit.models.llada' not in sys.modules and 'igpo_kit.models.dream' not in sys.modules
remote = net(input_ids=ids).logits[0, :, :50].tolist()
# 2. the kit's loader (native class)
from igpo_kit.components import model
lm = getattr(model, family)(path=path, device='cpu')
assert type(lm.network).__module__.startswith('igpo_kit.'), type(lm.network)
print(json.dumps([remote, lm.network(input_ids=ids).logits[0, :, :50].tolist()]))
"""


def _probe(path: Path, family: str, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``[T, 50]`` of a fresh process: (remote code, kit)."""
    r = subprocess.run([sys.executable, "-c", PROBE, str(path), family, json.dumps(ids)], capture_output=True,
                       text=True, timeout=600, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr[-3000:]
    remote, kit = json.loads(r.stdout.strip().splitlines()[-1])
    return torch.tensor(remote), torch.tensor(kit)


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_kit_saved_model_reloads_in_a_fresh_process_both_ways(family, request, tmp_path):
    folder = request.getfixturevalue(f"{family}_lm_dir")
    lm = getattr(models, family)(path=str(folder), device="cpu")
    with torch.no_grad():
        for p in lm.network.parameters():  # "trained": different from the checkpoint it came from
            p.add_(0.01)
    out = export_model(lm, tmp_path / "model")
    code = sorted(f.name for f in out.glob("*.py"))
    assert code == sorted(f.name for f in folder.glob("*.py")) and code
    assert json.loads((out / "config.json").read_text())["auto_map"] == json.loads(
        (folder / "config.json").read_text())["auto_map"]
    ids = [5, 9, 11, 42, 7, 3]
    with torch.no_grad():
        expected = lm.network(input_ids=torch.tensor([ids])).logits[0, :, :50]
    remote, kit = _probe(out, family, ids)
    torch.testing.assert_close(remote, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(kit, expected, rtol=0, atol=1e-5)


def test_remote_model_save_writes_its_code(llada_lm_dir, dream_lm_dir, tmp_path):
    """``save_pretrained`` (what the SFT/RL jobs call) of a remote-code model writes its modelling files."""
    from igpo_kit.models.remote import load_remote, save_remote

    dream = load_remote(str(dream_lm_dir), dtype=torch.float32)
    dream.save_pretrained(tmp_path / "dream")
    assert {"configuration_dream.py", "modeling_dream.py", "generation_utils.py"} <= {
        f.name for f in (tmp_path / "dream").glob("*.py")}
    assert {"tokenization_dream.py"} <= {f.name for f in save_remote(dream, tmp_path / "dream2").glob("*.py")}
    net = load_remote(str(llada_lm_dir), dtype=torch.float32)
    out = tmp_path / "saved"
    net.save_pretrained(out)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(llada_lm_dir)).save_pretrained(out)
    assert {"configuration_llada.py", "modeling_llada.py"} <= {f.name for f in out.glob("*.py")}
    ids = [5, 9, 11]
    with torch.no_grad():
        expected = net(input_ids=torch.tensor([ids])).logits[0, :, :50]
    remote, kit = _probe(out, "llada", ids)
    torch.testing.assert_close(remote, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(kit, expected, rtol=0, atol=1e-5)
