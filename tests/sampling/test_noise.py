"""Gumbel-max sampling and remasking confidences (spec sec. 1.3 steps 3-4; invariants 6-7)."""

from __future__ import annotations

import pytest
import torch

from igpo_kit.sampling import noise, reference

LOGITS = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -2.5])
N = 20000
CRIT_DF5_P001 = 20.515  # chi-square critical value, 5 degrees of freedom, alpha = 0.001


def _chi2_ok(counts: torch.Tensor, probs: torch.Tensor) -> tuple[bool, float]:
    expected = probs.double() * counts.sum()
    stat = float(((counts.double() - expected) ** 2 / expected).sum())
    try:
        from scipy.stats import chi2

        crit = float(chi2.ppf(1 - 1e-3, df=len(probs) - 1))
    except ImportError:
        assert len(probs) == 6
        crit = CRIT_DF5_P001
    return stat < crit, stat


@pytest.mark.parametrize("tau", [0.5, 1.0, 1.2])
@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_gumbel_distribution(mode, tau):
    """Invariant 7: the empirical distribution of x0 matches softmax(l / tau) (chi-square, alpha = 1e-3)."""
    g = torch.Generator().manual_seed(2024)
    logits = LOGITS.expand(1, N, -1)
    if mode == "fast":
        x0 = noise.gumbel_max_fast(logits[0], tau, g)
    else:
        x0 = noise.gumbel_max_exact(logits, tau, g, (1, N, len(LOGITS)), slice(0, N))[0]
    counts = torch.bincount(x0, minlength=len(LOGITS))
    ok, stat = _chi2_ok(counts, torch.softmax(LOGITS / tau, -1))
    assert ok, f"chi2 = {stat:.2f}, counts {counts.tolist()}"
    # and it is not the untempered distribution (the test has power): tau != 1 must differ clearly
    if tau != 1.0:
        assert not _chi2_ok(counts, torch.softmax(LOGITS, -1))[0]


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_greedy_consumes_no_rng(mode):
    """Invariant 6 at the noise level: tau = 0 is argmax and leaves the generator untouched."""
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    logits = torch.randn(2, 5, 11, generator=torch.Generator().manual_seed(0))
    if mode == "fast":
        x0 = noise.gumbel_max_fast(logits, 0.0, g)
    else:
        x0 = noise.gumbel_max_exact(logits, 0.0, g, (2, 9, 11), slice(2, 7))
    assert torch.equal(x0, logits.argmax(-1))
    assert torch.equal(g.get_state(), state)


def test_confidence_is_untempered_probability_of_sampled_token():
    """Confidence = softmax(l)[x0] at tau = 1 (not softmax(l / tau), not the argmax's probability)."""
    logits = torch.randn(4, 7, 13, generator=torch.Generator().manual_seed(1))
    x0 = noise.gumbel_max_fast(logits, 1.7, torch.Generator().manual_seed(2))
    assert (x0 != logits.argmax(-1)).any()  # some sampled tokens are not the argmax
    conf = noise.token_confidence(logits, x0)
    assert conf.dtype == torch.float64
    want = torch.softmax(logits.double(), -1).gather(-1, x0[..., None])[..., 0]
    torch.testing.assert_close(conf, want, rtol=0, atol=0)
    assert not torch.allclose(conf, torch.softmax(logits.double() / 1.7, -1).gather(-1, x0[..., None])[..., 0])


def test_exact_draw_equals_reference_slice():
    """exact mode = the reference's full-shape float64 draw, restricted to the block."""
    shape = (2, 10, 17)
    logits = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    ref = reference.add_gumbel_noise(logits, 1.2, torch.Generator().manual_seed(9)).argmax(-1)
    g = torch.Generator().manual_seed(9)
    got = noise.gumbel_max_exact(logits[:, 3:8], 1.2, g, shape, slice(3, 8))
    assert torch.equal(got, ref[:, 3:8])
    g2 = torch.Generator().manual_seed(9)
    torch.rand(shape, dtype=torch.float64, generator=g2)
    assert torch.equal(g.get_state(), g2.get_state())  # consumed exactly the full draw


def test_random_confidences():
    g = torch.Generator().manual_seed(0)
    c = noise.random_confidence_fast(5, g, torch.device("cpu"))
    assert c.shape == (5,) and c.dtype == torch.float32 and bool(((c >= 0) & (c < 1)).all())
    e = noise.random_confidence_exact(2, 9, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert e.shape == (2, 9) and e.dtype == torch.float32
    assert torch.equal(e, torch.rand((2, 9), generator=torch.Generator().manual_seed(0)))


def test_noise_without_generator_errors():
    with pytest.raises(ValueError, match="Generator"):
        noise.gumbel_max_fast(torch.zeros(2, 3), 1.0, None)
    with pytest.raises(ValueError, match="Generator"):
        noise.gumbel_max_exact(torch.zeros(1, 2, 3), 1.0, None, (1, 2, 3), slice(0, 2))
