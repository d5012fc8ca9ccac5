"""``sampler.dual_cache``: Fast-dLLM's dual key/value cache on the native models (an approximation of the sampler).

Exactness with a refresh at every step, the cache refreshed once per block from the sequence as the previous
block left it, hints never overwritten, the EOS early exit, guidance, padding, Dream's shifted logits; a model
without the cache interface is refused naming the samplers that work.
"""

from __future__ import annotations

import pytest
import torch

from igpo_kit.errors import ConfigError
from igpo_kit.sampling.dual_cache import DualCacheSampler, dual_cache
from igpo_kit.sampling.generate import generate, low_confidence

L, BL, STEPS = 32, 8, 16  # 4 blocks x 4 steps


def test_model_without_cache_is_refused(tiny_lm, prompts):
    s = dual_cache(gen_length=L, block_length=BL, steps=STEPS)
    with pytest.raises(ConfigError) as err:
        s(tiny_lm, prompts)
    msg = str(err.value)
    assert "sampler.dual_cache" in msg and tiny_lm.name in msg
    assert "sampler.low_confidence" in msg and "sampler.random" in msg and "\n" not in msg
    with pytest.raises(ConfigError):
        s.check_model(tiny_lm)
    low_confidence().check_model(tiny_lm)  # the exact sampler runs on anything


def test_options_are_validated():
    with pytest.raises(ConfigError, match="refresh"):
        dual_cache(refresh="never")
    with pytest.raises(ConfigError, match=r"threshold must be in \(0, 1\]"):
        dual_cache(threshold=0.0)
    with pytest.raises(ConfigError, match="multiple of block_length"):
        dual_cache(gen_length=30, block_length=8, steps=16)
    assert isinstance(dual_cache(), DualCacheSampler) and dual_cache().remasking == "low_confidence"


def test_registered_and_described_as_an_approximation():
    from igpo_kit.components import sampler
    from igpo_kit.registry import get, registry

    assert get("sampler", "dual_cache") is dual_cache and sampler.dual_cache is dual_cache
    entry = registry("sampler").entry("dual_cache")
    assert "APPROXIMATE" in entry.summary
    assert "APPROXIMATION" in dual_cache.__doc__


def test_cli_exits_2_naming_the_model_and_the_samplers_that_work(tmp_path):
    from typer.testing import CliRunner

    from igpo_kit.cli.main import app

    r = CliRunner().invoke(app, ["run", "tiny/eval.gin", "--runs-dir", str(tmp_path),
                                 "-b", "gsm8k/tasks.task.sampler = @sampler.dual_cache()",
                                 "-b", "sampler.dual_cache.gen_length = 64", "-b", "sampler.dual_cache.steps = 32"])
    out = r.output.replace("\n", " ")
    assert r.exit_code == 2, r.output
    assert "tiny has none" in out and "sampler.low_confidence" in out and "Traceback" not in out
