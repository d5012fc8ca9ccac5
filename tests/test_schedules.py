"""Warmup-stable-decay (Table 2), RL and linear warmup/decay LambdaLR factories, pinned against transformers'."""

from __future__ import annotations

import pytest
import torch

from igpo_kit.errors import ConfigError
from igpo_kit.schedules import linear_warmup_decay, warmup_stable_decay, wsd_factor


def _lrs(scheduler, optimizer, steps):
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def _opt(lr=5e-6):
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def test_wsd_shape_table2():
    opt = _opt(5e-6)
    total = 3000
    sch = warmup_stable_decay(opt, total, warmup_steps=200, min_lr=1e-6, decay_fraction=0.1)
    lrs = _lrs(sch, opt, total)
    assert lrs[0] == 0.0
    assert lrs[100] == pytest.approx(2.5e-6)
    # warmup strictly increasing, then stable at the peak until the final 10%
    assert all(a < b for a, b in zip(lrs[:200], lrs[1:201]))
    assert all(x == pytest.approx(5e-6) for x in lrs[200:2700])
    # decay over the final 300 steps, monotone, down to min_lr at the last step
    decay = lrs[2700:]
    assert all(a > b for a, b in zip(decay, decay[1:]))
    assert decay[-1] == pytest.approx(1e-6)
    assert min(lrs[200:]) >= 1e-6 - 1e-15


@pytest.mark.parametrize("decay_type", ["linear", "cosine", "sqrt"])
def test_decay_types_end_at_min(decay_type):
    f = [wsd_factor(s, 100, 10, 0.2, 0.1, decay_type) for s in range(100)]
    assert f[0] == 0 and f[10] == 1 and f[79] == 1
    assert f[99] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(f[80:], f[81:]))


def test_short_run_overlap_and_beyond_end():
    f = [wsd_factor(s, 5, 10, 0.5, 0.0) for s in range(8)]
    assert f[0] == 0.0 and max(f) < 1.0
    assert f[4] == 0.0 and f[7] == 0.0


def test_min_lr_above_lr_rejected():
    with pytest.raises(ConfigError):
        warmup_stable_decay(_opt(1e-7), 10, min_lr=1e-6)


def test_scheduler_state_roundtrip():
    opt = _opt(1e-3)
    sch = warmup_stable_decay(opt, 50, warmup_steps=5, min_lr=1e-5)
    _lrs(sch, opt, 20)
    state_o, state_s = opt.state_dict(), sch.state_dict()
    rest = _lrs(sch, opt, 30)
    opt2 = _opt(1e-3)
    sch2 = warmup_stable_decay(opt2, 50, warmup_steps=5, min_lr=1e-5)
    opt2.load_state_dict(state_o)
    sch2.load_state_dict(state_s)
    assert _lrs(sch2, opt2, 30) == rest


def test_linear_warmup_decay():
    opt = _opt(5e-7)
    sch = linear_warmup_decay(opt, total_steps=150, warmup_steps=50)
    lrs = _lrs(sch, opt, 160)
    assert lrs[0] == 0 and lrs[25] == pytest.approx(2.5e-7) and lrs[50] == pytest.approx(5e-7)
    assert lrs[100] == pytest.approx(2.5e-7)
    assert lrs[150] == 0 and lrs[159] == 0
    assert all(a >= b for a, b in zip(lrs[50:], lrs[51:]))


# --- exact values against transformers' schedules (the relations stated in igpo_kit/schedules.py) ---------------

def _hf(factory, steps, **kw):
    """transformers' LambdaLR factor at each step (its lr_lambda, read off a scheduler over a base lr of 1)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    fn = factory(opt, **kw).lr_lambdas[0]
    return [fn(s) for s in range(steps)]


def test_linear_factor_is_transformers_linear_schedule():
    from transformers import get_linear_schedule_with_warmup

    from igpo_kit.schedules import linear_factor

    hf = _hf(get_linear_schedule_with_warmup, 160, num_warmup_steps=50, num_training_steps=150)
    assert [linear_factor(s, 150, 50) for s in range(160)] == hf
    assert hf[0] == 0.0 and hf[50] == 1.0 and hf[100] == 0.5 and hf[150] == 0.0


def test_rl_warmup_is_one_step_ahead_of_transformers_then_identical():
    from transformers import get_linear_schedule_with_warmup

    from igpo_kit.schedules import rl_linear_factor

    w, decay = 50, 150
    hf = _hf(get_linear_schedule_with_warmup, decay + 10, num_warmup_steps=w, num_training_steps=decay)
    ours = [rl_linear_factor(s, w, decay) for s in range(decay + 10)]
    assert ours[:w] == hf[1:w + 1]                 # warm-up: ours at s is transformers' at s + 1
    assert ours[0] == 1 / w and ours[w - 1] == 1.0  # peak one step earlier than transformers' (step w)
    assert ours[w:] == hf[w:]                      # peak and decay: the same values
    assert [rl_linear_factor(s, 1, 4) for s in range(5)] == [1.0, 1.0, 2 / 3, 1 / 3, 0.0]  # tiny/igpo.gin-like


def test_wsd_warmup_and_peak_match_transformers_and_decay_is_one_step_ahead():
    from transformers import get_wsd_schedule

    total, w, frac, min_ratio = 100, 10, 0.2, 0.1
    decay = 20  # ceil(frac * total)
    ours = [wsd_factor(s, total, w, frac, min_ratio) for s in range(total + 5)]
    hf0 = _hf(get_wsd_schedule, total + 5, num_warmup_steps=w, num_decay_steps=decay, num_training_steps=total,
              decay_type="linear", min_lr_ratio=0.0)
    hf = _hf(get_wsd_schedule, total + 5, num_warmup_steps=w, num_decay_steps=decay, num_training_steps=total,
             decay_type="linear", min_lr_ratio=min_ratio)
    assert ours[:w] == hf0[:w]                              # warm-up from 0 (transformers with min_lr_ratio=0)
    assert ours[w:total - decay] == hf[w:total - decay] == [1.0] * (total - decay - w)  # stable peak
    assert ours[total - decay:total] == pytest.approx(hf[total - decay + 1:total + 1], abs=1e-15)  # decay: s -> s+1
    assert ours[total - 1] == pytest.approx(min_ratio) and ours[total:] == [min_ratio] * 5
