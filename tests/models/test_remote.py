"""The transformers-5 repairs for remote code: the real upstream files load and run, in process only (the files are
never edited), and each repair is idempotent."""

from __future__ import annotations

import hashlib

import torch

from igpo_kit.models.remote import code_files, load_remote, remote_config


def _digests(folder) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir()) if f.is_file()}


def test_upstream_files_load_run_and_stay_untouched(llada_dir, dream_dir):
    for folder, expected in [(llada_dir, {"configuration_llada.py", "modeling_llada.py"}),
                             (dream_dir, {"configuration_dream.py", "modeling_dream.py"})]:
        before = _digests(folder)
        for _ in range(2):  # loading twice: the repairs apply once
            net = load_remote(str(folder), dtype=torch.float32)
        assert _digests(folder) == before
        assert expected <= set(code_files(net.config))
        assert hasattr(net, "all_tied_weights_keys")  # post_init ran
        assert remote_config(str(folder)).use_cache in (True, False)
        with torch.no_grad():
            assert torch.isfinite(net(input_ids=torch.tensor([[1, 2, 3]])).logits).all()


def test_dream_rotary_buffers_are_real_after_loading(dream_dir):
    net = load_remote(str(dream_dir), dtype=torch.float32)
    dim = net.config.hidden_size // net.config.num_attention_heads
    expected = 1.0 / (net.config.rope_theta ** (torch.arange(0, dim, 2).float() / dim))
    for module in net.modules():
        if hasattr(module, "rope_init_fn"):
            torch.testing.assert_close(module.inv_freq, expected)
