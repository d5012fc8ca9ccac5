"""Shared fixtures: offline environment, a tiny dLLM, gin state reset, the optional ../shared folder."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
# Installed igpo_kit.plugins entry points (a user's own plugin, the README's example) must not change what the
# tests see (a duplicate name would fail them): autoload is off here and in every subprocess the tests start;
# tests/registry/test_plugins.py turns it back on where it tests it (the ``plugin_env`` fixture).
os.environ["IGPO_KIT_DISABLE_PLUGIN_AUTOLOAD"] = "1"

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def tiny_lm():
    """A tiny random bidirectional dLLM (seed 0); do not modify it in tests (use ``tiny_lm_factory``)."""
    from igpo_kit.models.tiny import tiny

    return tiny(seed=0)


@pytest.fixture
def tiny_lm_factory():
    from igpo_kit.models.tiny import tiny

    return tiny


@pytest.fixture
def shared_dir() -> Path:
    """``../shared`` beside the checkout; tests using it skip cleanly where it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (benchmark data and spec live there)")
    return SHARED


@pytest.fixture(autouse=True)
def _clear_gin():
    yield
    try:
        import gin

        gin.clear_config(clear_constants=False)
    except Exception:
        pass


@pytest.fixture(scope="session")
def tiny_causal_dir(tmp_path_factory):
    """A random 1-layer Llama with the tiny character tokenizer, saved locally (the rewriter of the tiny recipe)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from igpo_kit.models.tiny import build_tokenizer

    tok = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("tiny_causal")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


# The quickstart's SFT at reduced size (tests only): the tiny ablation specs start RL from this model
# (recipes/tiny/igpo_sft.gin, model.cached_sft), bound as macros, exactly as a user would shrink it. Measured with
# recipes/tiny/eval_sft.gin: 400 steps x 16 rows (~45 s on one core) gives greedy pass@1 0.047 on 128 held-out
# problems and 0.029 of rollouts correct at temperature 1.2 (64 problems x 8), enough for IGPO rescues in the
# sample_matched test (tests/sweep/test_tiny_specs_run.py); 150 steps x 32 rows scored 0 (no answer format yet).
SFT_START_BINDINGS = ["SFT_STEPS = 400", "SFT_BATCH_SIZE = 16", "SFT_WARMUP_STEPS = 20"]


@pytest.fixture(scope="session")
def sft_start(tmp_path_factory):
    """A runs root whose quickstart SFT cache (``<root>/quickstart/_cache``) holds the reduced SFT start, built once
    per session, and the bindings that select it: set ``$IGPO_KIT_RUNS`` to ``root`` and pass the bindings."""
    import types

    import gin

    from igpo_kit import config as cfg

    root = tmp_path_factory.mktemp("sft_start_runs")
    before = os.environ.get("IGPO_KIT_RUNS")
    os.environ["IGPO_KIT_RUNS"] = str(root)
    try:
        cfg.parse("tiny/igpo_sft.gin", bindings=SFT_START_BINDINGS)
        gin.query_parameter("igpo_kit.entry.rl.model").scoped_configurable_fn()  # trains and caches it
    finally:
        gin.clear_config(clear_constants=False)
        if before is None:
            os.environ.pop("IGPO_KIT_RUNS", None)
        else:
            os.environ["IGPO_KIT_RUNS"] = before
    assert len(list((root / "quickstart" / "_cache").glob("sft-*/model/config.json"))) == 1
    return types.SimpleNamespace(root=root, bindings=list(SFT_START_BINDINGS))
