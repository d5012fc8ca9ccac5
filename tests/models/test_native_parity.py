"""Native LLaDA / Dream == the real upstream remote code (float32, 1e-5) on tiny checkpoints built from
../shared/models, with and without padding; padded rows == the prompt alone; the logits slice."""

from __future__ import annotations

import pytest
import torch

from igpo_kit.models.dream import DreamModel
from igpo_kit.models.llada import LLaDAModelLM
from igpo_kit.models.remote import load_remote

TOL = 1e-5


def _pair(folder, cls):
    remote = load_remote(str(folder), dtype=torch.float32).eval()
    native = cls.from_pretrained(str(folder), dtype=torch.float32).eval()
    return native, remote


@pytest.fixture(scope="module")
def llada_pair(llada_dir):
    return _pair(llada_dir, LLaDAModelLM)


@pytest.fixture(scope="module")
def dream_pair(dream_dir):
    return _pair(dream_dir, DreamModel)


def _ids(batch=2, length=20, seed=0, high=120000):
    return torch.randint(0, high, (batch, length), generator=torch.Generator().manual_seed(seed))


def _left_padding(batch: int, length: int, pads: list[int]) -> torch.Tensor:
    mask = torch.ones(batch, length, dtype=torch.long)
    for row, n in enumerate(pads):
        mask[row, :n] = 0
    return mask


@torch.no_grad()
@pytest.mark.parametrize("pair", ["llada_pair", "dream_pair"])
def test_logits_equal_the_upstream_code(pair, request):
    native, remote = request.getfixturevalue(pair)
    x = _ids()
    torch.testing.assert_close(native(input_ids=x).logits, remote(input_ids=x).logits, rtol=0, atol=TOL)


@torch.no_grad()
def test_llada_padded_row_equals_upstream_on_the_prompt_alone(llada_pair):
    """The shared modelling_llada.py predates the hub's padding-mask support (it ignores attention_mask), so the
    padded parity is: native on the left-padded batch == upstream on each unpadded prompt run alone."""
    native, remote = llada_pair
    x, pads = _ids(3, 18, seed=1), [5, 0, 11]
    padded = native(input_ids=x, attention_mask=_left_padding(3, 18, pads)).logits
    for row, n in enumerate(pads):
        alone = remote(input_ids=x[row:row + 1, n:]).logits[0]
        torch.testing.assert_close(padded[row, n:], alone, rtol=0, atol=TOL)


@torch.no_grad()
def test_dream_padded_batch_equals_upstream_with_its_padding_inputs(dream_pair):
    """Dream's upstream code takes padding as its sampler builds it (a 4-D mask and position ids counting real
    tokens); the native class takes the 2-D mask and gives the same logits on real positions, == prompt alone."""
    native, remote = dream_pair
    x, pads = _ids(3, 18, seed=2), [4, 0, 9]
    mask = _left_padding(3, 18, pads)
    padded = native(input_ids=x, attention_mask=mask).logits
    real = mask.bool()
    mask4 = real[:, None, :, None] & real[:, None, None, :]
    upstream = remote(input_ids=x, attention_mask=mask4, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
    torch.testing.assert_close(padded[real], upstream[real], rtol=0, atol=TOL)
    for row, n in enumerate(pads):
        torch.testing.assert_close(padded[row, n:], remote(input_ids=x[row:row + 1, n:]).logits[0], rtol=0, atol=TOL)


@torch.no_grad()
@pytest.mark.parametrize("pair", ["llada_pair", "dream_pair"])
def test_logits_slice_runs_the_head_on_those_positions_only(pair, request):
    native, _ = request.getfixturevalue(pair)
    x = _ids(2, 16, seed=3)
    full = native(input_ids=x).logits
    keep = torch.tensor([3, 7, 8, 15])
    torch.testing.assert_close(native(input_ids=x, logits_to_keep=keep).logits, full[:, keep], rtol=0, atol=TOL)
    assert native(input_ids=x, logits_to_keep=4).logits.shape[1] == 4
    calls = []
    head = native.get_output_embeddings().register_forward_hook(lambda m, i, o: calls.append(i[0].shape[1]))
    try:
        native(input_ids=x, logits_to_keep=keep)
    finally:
        head.remove()
    assert calls == [4]


def test_llada_reads_the_checkpoint_rope_settings(llada_pair):
    native, remote = llada_pair
    assert native.rope_theta == 500000.0 and native.config.rope_full_precision is True
    assert native.config.max_sequence_length == remote.config.max_sequence_length


def test_dream_is_grouped_query_with_qkv_bias(dream_pair):
    native, _ = dream_pair
    attn = native.model.layers[0].self_attn
    assert (attn.n_heads, attn.n_kv_heads) == (4, 2) and attn.q_proj.bias is not None and attn.o_proj.bias is None
    assert native.rope_theta == 1e6


@torch.no_grad()
@pytest.mark.parametrize("pair", ["llada_pair", "dream_pair"])
def test_bfloat16_forward_is_close_to_float32(pair, request):
    native, _ = request.getfixturevalue(pair)
    import copy

    half = copy.deepcopy(native).to(torch.bfloat16)
    x = _ids(2, 12, seed=4)
    mask = _left_padding(2, 12, [3, 0])
    low = half(input_ids=x, attention_mask=mask).logits
    assert low.dtype == torch.bfloat16
    ref = native(input_ids=x, attention_mask=mask).logits
    assert (low.float() - ref).abs().max() < 0.05 * ref.abs().max()
