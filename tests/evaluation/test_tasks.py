"""Evaluation tasks: an empty dataset is a configuration error, not a DONE run with 0 samples."""

from __future__ import annotations

import pytest

from igpo_kit.errors import ConfigError
from igpo_kit.evaluation.tasks import task


def test_empty_dataset_is_refused():
    from igpo_kit.components import sampler

    with pytest.raises(ConfigError, match="evaluation task 'gsm8k': its dataset is empty"):
        task(name="gsm8k", dataset=[], sampler=sampler.low_confidence())
