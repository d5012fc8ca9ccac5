"""model.tiny: the embedding initialisation option (the quickstart's tiny native LLaDA uses Gemma's effective scale)."""

import pytest
import torch

from igpo_kit.errors import ConfigError
from igpo_kit.models.tiny import tiny


@pytest.mark.parametrize("architecture", ["llada", "dream", "gemma"])
def test_embedding_std_sets_only_the_embeddings(architecture):
    plain, scaled = tiny(architecture=architecture), tiny(architecture=architecture, embedding_std=0.16)
    emb = scaled.network.get_input_embeddings().weight
    assert plain.network.get_input_embeddings().weight.std().item() == pytest.approx(0.02, rel=0.15)
    assert emb.std().item() == pytest.approx(0.16, rel=0.15)
    rest = {n: p for n, p in plain.network.named_parameters() if "embed" not in n and "wte" not in n}
    for n, p in scaled.network.named_parameters():
        if n in rest:
            assert torch.equal(p, rest[n]), n  # every other weight is the seed's
    again = tiny(architecture=architecture, embedding_std=0.16).network.get_input_embeddings().weight
    assert torch.equal(again, emb)  # deterministic from the seed


def test_embedding_std_must_be_positive():
    with pytest.raises(ConfigError, match="embedding_std"):
        tiny(architecture="llada", embedding_std=0.0)
