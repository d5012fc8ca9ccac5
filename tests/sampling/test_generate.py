"""LLaDA block decoding and inpainting (spec sec. 1-2; invariants 2-6)."""

from __future__ import annotations

import inspect

import pytest
import torch

from igpo_kit.sampling import reference
from igpo_kit.sampling.generate import Generation, LLaDASampler, generate, low_confidence, random
from igpo_kit.sampling.schedule import num_transfer_tokens

L, BL, STEPS = 32, 8, 16  # 4 blocks x 4 steps, 2 tokens per step without hints


def _gen(model, prompts, **kw):
    kw.setdefault("gen_length", L)
    kw.setdefault("block_length", BL)
    kw.setdefault("steps", STEPS)
    return generate(model, prompts, **kw)


def _initial(model, prompts, gen_length, hint_ids=None, hint_mask=None):
    b, p = prompts.shape
    x = torch.full((b, p + gen_length), model.mask_id, dtype=torch.long)
    x[:, :p] = prompts
    if hint_ids is not None:
        x[:, p:][hint_mask] = hint_ids[hint_mask]
    return x


# ---------------------------------------------------------------- invariant 5: equivalence with the reference

@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize(
    "tau,remasking,mode",
    [
        (0.0, "low_confidence", "fast"),
        (0.0, "low_confidence", "exact"),
        (1.2, "low_confidence", "exact"),
        (1.2, "random", "exact"),
        (0.0, "random", "exact"),
    ],
)
def test_plain_path_equals_reference(toy_lm, prompts, batch, tau, remasking, mode):
    """Invariant 5: the plain path equals LLaDA `generate` (float64 softmax) token for token, same generator seed;
    the exact mode also consumes the same random numbers."""
    p = prompts[:batch]
    g_kit, g_ref = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    out = _gen(toy_lm, p, temperature=tau, remasking=remasking, generator=g_kit, noise=mode)
    ref = reference.generate(toy_lm, p, steps=STEPS, gen_length=L, block_length=BL, temperature=tau,
                             remasking=remasking, generator=g_ref)
    assert torch.equal(out.sequences, ref)
    assert torch.equal(g_kit.get_state(), g_ref.get_state())
    assert len(set(out.completions.flatten().tolist())) > 5  # diverse tokens: the comparison is not vacuous


def test_plain_path_equals_reference_real_tiny_model(tiny_lm, prompts):
    """Same, through the real tiny transformer (LM head sliced to the block by the adapter)."""
    for tau, remasking in [(0.0, "low_confidence"), (1.2, "low_confidence"), (1.2, "random")]:
        g_kit, g_ref = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        out = _gen(tiny_lm, prompts, temperature=tau, remasking=remasking, generator=g_kit, noise="exact")
        ref = reference.generate(tiny_lm, prompts, steps=STEPS, gen_length=L, block_length=BL, temperature=tau,
                                 remasking=remasking, generator=g_ref)
        assert torch.equal(out.sequences, ref), (tau, remasking)


def test_cfg_equals_reference(toy_lm, prompts):
    g_kit, g_ref = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    out = _gen(toy_lm, prompts, temperature=1.2, cfg_scale=0.7, generator=g_kit, noise="exact")
    ref = reference.generate(toy_lm, prompts, steps=STEPS, gen_length=L, block_length=BL, temperature=1.2,
                             cfg_scale=0.7, generator=g_ref)
    assert torch.equal(out.sequences, ref)
    plain = _gen(toy_lm, prompts, temperature=1.2, generator=torch.Generator().manual_seed(3), noise="exact")
    assert not torch.equal(plain.sequences, out.sequences)  # guidance changes something


@pytest.mark.parametrize(
    "tau,remasking,cfg", [(0.0, "low_confidence", 0.0), (1.2, "low_confidence", 0.0), (1.2, "random", 0.0),
                          (1.2, "low_confidence", 0.5)]
)
def test_inpainting_equals_reference(toy_lm, prompts, hints_factory, tau, remasking, cfg):
    """Invariant 5 (inpainting): equals IGPO's generate_inpainting given the same hints (exact mode)."""
    hint_ids, hint_mask = hints_factory(3, L)
    g_kit, g_ref = torch.Generator().manual_seed(8), torch.Generator().manual_seed(8)
    out = _gen(toy_lm, prompts, temperature=tau, remasking=remasking, cfg_scale=cfg, hint_ids=hint_ids,
               hint_mask=hint_mask, generator=g_kit, noise="exact")
    ref, fixed, first = reference.generate_inpainting(
        toy_lm, prompts, hint_ids, hint_mask, steps=STEPS, gen_length=L, block_length=BL, temperature=tau,
        remasking=remasking, cfg_scale=cfg, eos_early_exit=False, generator=g_ref)
    assert torch.equal(out.sequences, ref)
    assert torch.equal(out.fixed, fixed)
    assert torch.equal(g_kit.get_state(), g_ref.get_state())


def test_skipped_block_and_idle_steps_match_reference(toy_lm, prompts):
    """A block that is all hints in every row is skipped (no model call, no RNG); steps where no row commits a
    token cost no forward pass but, in exact mode, still draw what the reference draws -- until no mask is left
    anywhere, where IGPO's step loop breaks."""
    hint_ids = torch.randint(8, 104, (3, L), generator=torch.Generator().manual_seed(1))
    hint_mask = torch.zeros(3, L, dtype=torch.bool)
    hint_mask[:, BL : 2 * BL] = True  # block 1: all hints
    hint_mask[:, 2 * BL : 3 * BL - 2] = True  # block 2: 2 masks per row, 4 steps -> 2 idle steps
    hint_mask[:, 3 * BL + 1 : 4 * BL - 2] = True  # block 3: 3 masks -> 1 idle step, after which IGPO breaks
    for mode in ["fast", "exact"]:
        g_kit, g_ref = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
        calls = toy_lm.calls
        out = _gen(toy_lm, prompts, temperature=1.2, hint_ids=hint_ids, hint_mask=hint_mask, generator=g_kit,
                   noise=mode)
        s = STEPS // (L // BL)
        assert out.nfe == toy_lm.calls - calls == s + 2 + 3  # blocks 0, 2 (2 busy steps), 3 (3); 1 skipped
        if mode == "exact":
            ref, _, _ = reference.generate_inpainting(
                toy_lm, prompts, hint_ids, hint_mask, steps=STEPS, gen_length=L, block_length=BL,
                temperature=1.2, eos_early_exit=False, generator=g_ref)
            assert torch.equal(out.sequences, ref)
            assert torch.equal(g_kit.get_state(), g_ref.get_state())


# ---------------------------------------------------------------- invariants 2-4

@pytest.mark.parametrize("mode", ["fast", "exact"])
@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
@pytest.mark.parametrize("with_hints", [False, True])
def test_block_locality_and_commit_counts(toy_lm, prompts, hints_factory, mode, remasking, with_hints):
    """Invariant 2: at block b only block b changes; step i commits exactly num_transfer_tokens[j, i] masked
    positions per row; committed tokens (and hints, prompt) never change afterwards. Invariant 3: no M left."""
    gen_length, block_length, steps = 32, 8, 12
    hint_ids, hint_mask = hints_factory(3, gen_length) if with_hints else (None, None)
    snaps = []
    out = generate(
        toy_lm, prompts, gen_length=gen_length, block_length=block_length, steps=steps, temperature=1.0,
        remasking=remasking, hint_ids=hint_ids, hint_mask=hint_mask, noise=mode,
        generator=torch.Generator().manual_seed(0),
        on_step=lambda s: snaps.append((s.block, s.step, s.block_start, s.block_end, s.sequences.clone(),
                                        s.transferred.clone(), s.num_transfer.clone())),
    )
    m_id = toy_lm.mask_id
    prev = _initial(toy_lm, prompts, gen_length, hint_ids, hint_mask)
    first = prev.clone()
    s_per_block = steps // (gen_length // block_length)
    block_start_state = {}
    for block, step, start, end, x, moved, k in snaps:
        if step == 0:
            block_start_state[block] = prev.clone()
            m = (prev[:, start:end] == m_id).sum(1)
            schedule = num_transfer_tokens(m, s_per_block)
        changed = x != prev
        assert torch.equal(changed, moved)
        assert not changed[:, :start].any() and not changed[:, end:].any()  # block locality
        assert bool((prev[changed] == m_id).all())  # only masks change: committed tokens never change
        assert bool((x[changed] != m_id).all())
        assert torch.equal(changed.sum(1), k)
        assert torch.equal(k, schedule[:, step])
        if step == s_per_block - 1:
            assert not (x[:, start:end] == m_id).any()  # the block is complete at its end
        prev = x.clone()
    assert torch.equal(prev, out.sequences)
    fixed = first != m_id
    assert torch.equal(out.sequences[fixed], first[fixed])  # invariant 4
    assert not (out.completions == m_id).any()  # invariant 3


def test_hints_fixed_and_outputs(toy_lm, prompts, hints_factory):
    """Invariant 4: out[fixed] == first_input[fixed]; prompt unchanged; fixed / hint_mask reported."""
    hint_ids, hint_mask = hints_factory(3, L, frac=0.4)
    out = _gen(toy_lm, prompts, temperature=1.5, hint_ids=hint_ids, hint_mask=hint_mask,
               generator=torch.Generator().manual_seed(2))
    first = _initial(toy_lm, prompts, L, hint_ids, hint_mask)
    assert isinstance(out, Generation)
    assert out.sequences.shape == (3, prompts.shape[1] + L) and out.prompt_length == prompts.shape[1]
    assert torch.equal(out.hint_mask, hint_mask)
    assert torch.equal(out.fixed[:, : prompts.shape[1]], torch.ones_like(prompts, dtype=torch.bool))
    assert torch.equal(out.fixed[:, prompts.shape[1]:], hint_mask)
    assert torch.equal(out.sequences[out.fixed], first[out.fixed])
    assert torch.equal(out.sequences[:, : prompts.shape[1]], prompts)
    assert torch.equal(out.completions[hint_mask], hint_ids[hint_mask])
    assert not (out.completions == toy_lm.mask_id).any()
    # hint_ids alone: hints are where hint_ids != M
    ids = torch.where(hint_mask, hint_ids, toy_lm.mask_id)
    out2 = _gen(toy_lm, prompts, temperature=1.5, hint_ids=ids, generator=torch.Generator().manual_seed(2))
    assert torch.equal(out2.sequences, out.sequences)


def test_hints_condition_the_future(toy_lm, prompts):
    """Hints in later blocks are visible from step 0 (a hint right after block 0 changes block 0's tokens)."""
    plain = _gen(toy_lm, prompts)
    hint_ids = torch.full((3, L), 50)
    hint_mask = torch.zeros(3, L, dtype=torch.bool)
    hint_mask[:, BL] = True  # first position of block 1
    hinted = _gen(toy_lm, prompts, hint_ids=hint_ids, hint_mask=hint_mask)
    assert not torch.equal(plain.completions[:, :BL], hinted.completions[:, :BL])


def test_eos_early_exit(toy_factory, prompts, hints_factory):
    """Invariant 3 (early exit): once every row's block is all EOS the remaining masks become EOS; hints kept;
    equal to IGPO's generate_inpainting (which always exits early)."""
    lm = toy_factory(eos_bias=100.0)
    hint_ids, hint_mask = hints_factory(3, L)
    hint_mask[:, :BL] = False  # block 0 has no hints, so it fills with EOS
    g_kit, g_ref = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    out = _gen(lm, prompts, temperature=1.0, hint_ids=hint_ids, hint_mask=hint_mask, generator=g_kit,
               noise="exact", eos_early_exit=True)
    assert out.early_exit and out.nfe == STEPS // (L // BL)
    comp = out.completions
    assert bool((comp[~hint_mask] == lm.eos_id).all())
    assert torch.equal(comp[hint_mask], hint_ids[hint_mask])
    ref, _, _ = reference.generate_inpainting(lm, prompts, hint_ids, hint_mask, steps=STEPS, gen_length=L,
                                              block_length=BL, temperature=1.0, eos_early_exit=True, generator=g_ref)
    assert torch.equal(out.sequences, ref)
    # without the flag the whole schedule runs (and still ends with EOS everywhere but the hints)
    full = _gen(lm, prompts, temperature=1.0, hint_ids=hint_ids, hint_mask=hint_mask,
                generator=torch.Generator().manual_seed(1), eos_early_exit=False)
    assert not full.early_exit and full.nfe == STEPS
    # a row whose block is not all EOS prevents the exit
    no_exit = _gen(toy_factory(eos_bias=0.0), prompts, eos_early_exit=True)
    assert not no_exit.early_exit and not (no_exit.completions == lm.mask_id).any()


# ---------------------------------------------------------------- invariant 6 and the RNG discipline

def test_greedy_determinism(toy_lm, prompts):
    """Invariant 6: tau = 0 low_confidence consumes no RNG and is seed-independent."""
    g = torch.Generator().manual_seed(99)
    state, global_state = g.get_state(), torch.random.get_rng_state()
    a = _gen(toy_lm, prompts, generator=g)
    assert torch.equal(g.get_state(), state)
    b = _gen(toy_lm, prompts, generator=torch.Generator().manual_seed(1), noise="exact")
    c = _gen(toy_lm, prompts)  # no generator needed
    assert torch.equal(a.sequences, b.sequences) and torch.equal(a.sequences, c.sequences)
    assert torch.equal(torch.random.get_rng_state(), global_state)


@pytest.mark.parametrize("mode", ["fast", "exact"])
@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
def test_global_rng_untouched_and_seeded(toy_lm, prompts, hints_factory, mode, remasking):
    """Randomness only from the generator: the global RNG state is unchanged; same seed -> same tokens."""
    hint_ids, hint_mask = hints_factory(3, L)
    state = torch.random.get_rng_state()
    a = _gen(toy_lm, prompts, temperature=1.2, remasking=remasking, noise=mode, hint_ids=hint_ids,
             hint_mask=hint_mask, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.random.get_rng_state(), state)
    b = _gen(toy_lm, prompts, temperature=1.2, remasking=remasking, noise=mode, hint_ids=hint_ids,
             hint_mask=hint_mask, generator=torch.Generator().manual_seed(5))
    c = _gen(toy_lm, prompts, temperature=1.2, remasking=remasking, noise=mode, hint_ids=hint_ids,
             hint_mask=hint_mask, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a.sequences, b.sequences) and not torch.equal(a.sequences, c.sequences)


def test_fast_mode_draws_only_for_masked_block_positions(toy_lm, prompts):
    """fast mode draws far fewer random numbers than exact mode (which draws [B, T, V] per step)."""
    g = torch.Generator().manual_seed(0)
    seen = []
    real_exponential = torch.Tensor.exponential_

    def spy(self, *args, **kwargs):
        seen.append(self.shape)
        return real_exponential(self, *args, **kwargs)

    torch.Tensor.exponential_ = spy
    try:
        _gen(toy_lm, prompts, temperature=1.0, generator=g)
    finally:
        torch.Tensor.exponential_ = real_exponential
    s = STEPS // (L // BL)
    # per block, the masked counts go 8, 6, 4, 2 per row (2 tokens per step), 3 rows
    assert [tuple(t) for t in seen] == [(3 * (BL - 2 * i), toy_lm.vocab_size) for _ in range(L // BL) for i in range(s)]


# ---------------------------------------------------------------- padding

def _left_pad(prompt_list, pad_id):
    width = max(len(p) for p in prompt_list)
    ids = torch.full((len(prompt_list), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompt_list), width), dtype=torch.long)
    for j, p in enumerate(prompt_list):
        ids[j, width - len(p):] = torch.tensor(p)
        mask[j, width - len(p):] = 1
    return ids, mask


def test_left_padding_equals_alone_toy(toy_factory):
    """Rows of a left-padded batch decode as each prompt alone (tau = 0, attention_mask): the sampler side."""
    lm = toy_factory(network_scale=0.0)  # a padding-exact toy: tests the sampler, not the network's masking
    g = torch.Generator().manual_seed(0)
    prompt_list = [torch.randint(8, 104, (n,), generator=g).tolist() for n in (7, 12, 9)]
    ids, mask = _left_pad(prompt_list, lm.pad_id)
    batched = _gen(lm, ids, attention_mask=mask)
    for j, p in enumerate(prompt_list):
        alone = _gen(lm, torch.tensor([p]))
        assert torch.equal(batched.completions[j], alone.completions[0]), j


def _adapter_padding_is_exact(model) -> bool:
    """Whether model.logits with a left-padding mask equals the unpadded logits (bidirectional, pads ignored)."""
    x = torch.randint(8, 104, (1, 20), generator=torch.Generator().manual_seed(0))
    xp = torch.cat([torch.full((1, 4), model.pad_id), x], dim=1)
    mask = torch.cat([torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 20, dtype=torch.long)], dim=1)
    with torch.inference_mode():
        return torch.allclose(model.logits(x), model.logits(xp, mask)[:, 4:], atol=1e-4)


def test_left_padding_equals_alone_tiny(tiny_lm, toy_factory):
    """Same through the real tiny transformer (with the toy's context terms so tokens are diverse)."""
    # transformers' Gemma builds a CAUSAL mask from a 2-D padding mask; the adapter must pass a 4-D key mask
    assert _adapter_padding_is_exact(tiny_lm)
    lm = toy_factory()
    g = torch.Generator().manual_seed(0)
    prompt_list = [torch.randint(8, 104, (n,), generator=g).tolist() for n in (7, 12, 9)]
    ids, mask = _left_pad(prompt_list, lm.pad_id)
    batched = _gen(lm, ids, attention_mask=mask)
    for j, p in enumerate(prompt_list):
        alone = _gen(lm, torch.tensor([p]))
        assert torch.equal(batched.completions[j], alone.completions[0]), j


# ---------------------------------------------------------------- validation, API, factories

def test_validation_errors(toy_lm, prompts):
    with pytest.raises(ValueError, match="multiple of block_length"):
        generate(toy_lm, prompts, gen_length=30, block_length=8, steps=16)
    with pytest.raises(ValueError, match="multiple of the number of blocks"):
        generate(toy_lm, prompts, gen_length=32, block_length=8, steps=10)
    with pytest.raises(ValueError, match="Generator"):
        generate(toy_lm, prompts, gen_length=32, block_length=8, steps=16, temperature=1.0)
    with pytest.raises(ValueError, match="Generator"):
        generate(toy_lm, prompts, gen_length=32, block_length=8, steps=16, remasking="random")
    with pytest.raises(ValueError, match="noise"):
        generate(toy_lm, prompts, gen_length=32, block_length=8, steps=16, noise="approx")
    with pytest.raises(ValueError, match="remasking"):
        generate(toy_lm, prompts, gen_length=32, block_length=8, steps=16, remasking="entropy")
    with pytest.raises(ValueError, match="hint_ids"):
        generate(toy_lm, prompts, gen_length=32, block_length=8, steps=16, hint_ids=torch.zeros(3, 31, dtype=torch.long))
    with pytest.raises(ValueError, match="mask token"):
        generate(toy_lm, prompts, gen_length=32, block_length=8, steps=16,
                 hint_ids=torch.full((3, 32), toy_lm.mask_id), hint_mask=torch.ones(3, 32, dtype=torch.bool))
    with pytest.raises(ValueError, match="attention_mask"):
        generate(toy_lm, prompts, gen_length=32, block_length=8, steps=16, attention_mask=torch.ones(3, 5))


def test_outputs_usable_by_autograd_and_progress(toy_lm, prompts, capsys):
    out = _gen(toy_lm, prompts, progress=True)
    assert not out.sequences.is_inference() and not out.fixed.is_inference()
    emb = torch.nn.Embedding(200, 4)
    emb(out.sequences).sum().backward()  # would fail on inference tensors
    assert "blocks" in capsys.readouterr().err


def test_sampler_factories(toy_lm, prompts):
    from igpo_kit.components import sampler
    from igpo_kit.registry import get

    assert get("sampler", "low_confidence") is low_confidence
    assert sampler.low_confidence is low_confidence and sampler.random is random
    assert get("sampler", "random") is random
    for fn, remasking in [(low_confidence, "low_confidence"), (random, "random")]:
        sig = inspect.signature(fn)
        for p in sig.parameters.values():
            assert p.annotation is not inspect.Parameter.empty and p.default is not inspect.Parameter.empty, p
        assert sig.parameters["noise"].default == "fast"
        s = fn(gen_length=L, block_length=BL, steps=STEPS, temperature=1.2, noise="exact")
        assert isinstance(s, LLaDASampler) and s.remasking == remasking
        with pytest.raises(Exception):
            s.steps = 3  # frozen
        out = s(toy_lm, prompts, generator=torch.Generator().manual_seed(1))
        ref = reference.generate(toy_lm, prompts, steps=STEPS, gen_length=L, block_length=BL, temperature=1.2,
                                 remasking=remasking, generator=torch.Generator().manual_seed(1))
        assert torch.equal(out.sequences, ref)
    assert low_confidence() == LLaDASampler()
    with pytest.raises(ValueError, match="noise"):
        low_confidence(noise="slow")
    with pytest.raises(ValueError, match="multiple of the number of blocks"):
        random(gen_length=256, block_length=32, steps=100)
