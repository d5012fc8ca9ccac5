"""The SFT cache: the key follows the content (weights, data, prompt, settings); a finished run is loaded, not rerun."""

from __future__ import annotations

import json

import pytest
import torch

from igpo_kit.data.prompts import plain
from igpo_kit.data.synthetic import arithmetic
from igpo_kit.sft.cache import cached_sft, sft_key

SETTINGS = dict(max_length=160, batch_size=2, max_steps=3, lr=1e-3, warmup_steps=1, checkpoint_every=2)


def test_key_follows_the_content(tiny_lm_factory):
    data = arithmetic(n=6, difficulty=1)
    prompt = plain(prefill="<reasoning>")
    key = sft_key(tiny_lm_factory(seed=0), data, prompt, SETTINGS)
    assert key == sft_key(tiny_lm_factory(seed=0), list(data), plain(prefill="<reasoning>"), dict(SETTINGS))
    assert key != sft_key(tiny_lm_factory(seed=1), data, prompt, SETTINGS)  # other initial weights
    assert key != sft_key(tiny_lm_factory(seed=0), data[:5], prompt, SETTINGS)
    assert key != sft_key(tiny_lm_factory(seed=0), data, plain(), SETTINGS)
    assert key != sft_key(tiny_lm_factory(seed=0), data, prompt, {**SETTINGS, "lr": 2e-3})


def test_second_call_loads_the_trained_weights(tiny_lm_factory, tmp_path):
    data = arithmetic(n=6, difficulty=1)
    prompt = plain(prefill="<reasoning>")
    first_model = tiny_lm_factory(seed=0)
    first = cached_sft(first_model, data, prompt, tmp_path, **SETTINGS)
    assert not first.reused and first.steps_run == 3 and first.run_dir == tmp_path / f"sft-{first.key}"
    assert len((first.run_dir / "metrics.jsonl").read_text().splitlines()) == 3

    again = tiny_lm_factory(seed=0)
    second = cached_sft(again, data, prompt, tmp_path, **SETTINGS)
    assert second.reused and second.steps_run == 0 and second.key == first.key
    for a, b in zip(first_model.network.state_dict().values(), again.network.state_dict().values()):
        assert torch.equal(a, b)

    other = cached_sft(tiny_lm_factory(seed=0), data, prompt, tmp_path, **{**SETTINGS, "max_steps": 2})
    assert not other.reused and other.key != first.key


def test_interrupted_sft_resumes_under_the_same_key(tiny_lm_factory, tmp_path):
    from igpo_kit.errors import RunError

    data = arithmetic(n=6, difficulty=1)
    prompt = plain(prefill="<reasoning>")
    with pytest.raises(RunError, match="stopped at step 2 of 3"):
        cached_sft(tiny_lm_factory(seed=0), data, prompt, tmp_path, stop_at_step=2, **SETTINGS)
    resumed = cached_sft(tiny_lm_factory(seed=0), data, prompt, tmp_path, **SETTINGS)
    assert not resumed.reused and resumed.steps_run == 1 and resumed.result.resumed_from == 2
    lines = (resumed.run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]
