"""The training loop in-process on the tiny model: replaced rows as specified inside the loop (spec invariant 13),
advantages per group (14), the entropy filter's kept hint tokens (17), ratio 1 and KL 0 at the first inner step
(16) for both references (frozen copy, disabled LoRA adapter), the metric aggregation, and the DeepSpeed config.

The random tiny model never answers correctly, with or without hints, so the replacement test uses a grader
(registered here, pure) that scores a completion correct when it contains the gold string ``ZZZ``, and traces
made of ``Z``: an inpainted rollout is correct when a revealed hint chunk (>= 3 tokens) is kept, which happens for
some rows and not for others (eta ~ U[0, 0.3]), so both ``K = #correct`` and ``K = floor(lambda*G)`` occur.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

from igpo_kit.data.examples import Example
from igpo_kit.rl.trainer import METRIC_KEYS, Components, RLSettings, train_rl
from igpo_kit.runs import Run

G, L = 4, 32


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: the tiny model's ops are too small to gain from two, and on a loaded machine OpenMP's
    thread hand-offs make them many times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@dataclass(frozen=True)
class ContainsGrader:
    """Correct (1.0) when the gold string occurs in the completion."""

    name: ClassVar[str] = "contains"
    role: ClassVar[str] = "correctness"
    max_score: ClassVar[float] = 1.0
    pure: ClassVar[bool] = True

    def score(self, completion: str, gold: str) -> float:
        return 1.0 if gold in completion else 0.0


def z_examples(n=8):
    return [Example(id=f"z/train/{i}", question=f"Write the letter Z {i + 3} times.", answer="ZZZ", trace="Z" * 40)
            for i in range(n)]


def components(loss=None, replacement=None, chunk=(3, 4), grader=None, sampler_wrap=None, adv_wrap=None):
    from igpo_kit.components import (advantage_estimator, entropy_filter, hint_chunker, logprob_estimator,
                                     loss as loss_k, prompt, replacement_policy, sampler)

    smp = sampler.low_confidence(gen_length=L, block_length=16, steps=16, temperature=1.2)
    adv = advantage_estimator.mean_centered()
    return Components(
        sampler=sampler_wrap(smp) if sampler_wrap else smp,
        grader=grader or ContainsGrader(),
        prompt=prompt.plain(),  # short prompts keep the tests fast (the CLI tests use the recipe's)
        hint_chunker=hint_chunker.paper(min_chunk_size=chunk[0], max_chunk_size=chunk[1]),
        replacement_policy=replacement or replacement_policy.igpo(replace_fraction=0.5),
        entropy_filter=entropy_filter.top_fraction(entropy_top_fraction=0.2),
        advantage_estimator=adv_wrap(adv) if adv_wrap else adv,
        logprob_estimator=logprob_estimator.mean_field(),
        loss=loss or loss_k.token_clip(kl_beta=0.01),
    )


def settings(**kw):
    base = dict(group_size=G, prompts_per_step=2, max_steps=4, inner_iters=2, learning_rate=1e-3, warmup_steps=1,
                max_grad_norm=1.0, hint_ratio_low=0.0, hint_ratio_high=0.3, grade_workers=1, seed=0,
                checkpoint_every=1000)  # only the final checkpoint
    return RLSettings(**{**base, **kw})


def test_replaced_rows_inside_the_loop_invariants_13_14_17(tiny_lm_factory, tmp_path, monkeypatch):
    import igpo_kit.rl.rollout as rollout

    calls, batches, advs = [], [], []

    def sampler_wrap(smp):
        def spy(model, ids, **kw):
            out = smp(model, ids, **kw)
            calls.append({"hints": kw.get("hint_mask") is not None, "seq": out.sequences.clone(),
                          "hint_mask": out.hint_mask.clone(), "completions": out.completions.clone()})
            return out
        return spy

    def adv_wrap(est):
        def spy(rewards):
            a = est(rewards)
            advs.append((rewards.clone(), a.clone()))
            return a
        return spy

    real_collect = rollout.collect

    def collect_spy(*a, **kw):
        n_before = len(calls)
        b = real_collect(*a, **kw)
        batches.append((b, calls[n_before:]))
        return b

    monkeypatch.setattr(rollout, "collect", collect_spy)
    model = tiny_lm_factory()
    grader = ContainsGrader()
    run = Run(tmp_path / "run")
    train_rl(model, z_examples(9), components(sampler_wrap=sampler_wrap, adv_wrap=adv_wrap),
             settings(prompts_per_step=3, max_steps=4, inner_iters=2), run)
    metrics = run.metrics()
    assert len(batches) == len(metrics) == 2

    tau, cap = 0.2, math.floor(0.5 * G)
    total_K, seen_below_cap, seen_above_cap = 0, False, False
    for (b, step_calls), m, (rewards, a) in zip(batches, metrics, advs):
        plain = step_calls[0]
        assert not plain["hints"]
        orig_correct = [grader.score(model.decode(r), "ZZZ") for r in plain["completions"].tolist()]
        triggered = [n for n in range(3) if not any(orig_correct[n * G:(n + 1) * G])]
        step_K = 0
        if triggered:
            assert len(step_calls) == 2 and step_calls[1]["hints"]  # ONE batched inpainting call for all groups
            sub = step_calls[1]
            assert sub["seq"].shape[0] == G * len(triggered)
        for k, n in enumerate(triggered):
            cand = [grader.score(model.decode(r), "ZZZ") for r in sub["completions"][k * G:(k + 1) * G].tolist()]
            K = min(int(sum(cand)), cap)
            seen_below_cap |= 0 < K == sum(cand) < cap  # K = #correct
            seen_above_cap |= sum(cand) > cap  # K = floor(lambda*G), a random choice among the correct ones
            used = set()
            for j in range(G):
                row = n * G + j
                if j < K:  # rows 0..K-1: a correct inpainted rollout with its hint mask
                    src = [s for s in range(G) if cand[s] and s not in used
                           and torch.equal(sub["seq"][k * G + s], b.sequences[row])]
                    assert src, f"row {row} is not a correct inpainted rollout"
                    used.add(src[0])
                    assert torch.equal(b.hint_mask[row], sub["hint_mask"][k * G + src[0]])
                    assert b.hint_mask[row].any() and b.correctness[n, j] == 1
                else:  # the others: bit-identical originals, no hints
                    assert torch.equal(b.sequences[row], plain["seq"][row]) and not b.hint_mask[row].any()
            assert int(b.correctness[n].sum()) == K
            step_K += K
        for n in set(range(3)) - set(triggered):
            assert not b.hint_mask[n * G:(n + 1) * G].any()
        assert m["replaced_rows_K"] == step_K == b.stats["replaced_rows_K"] and m["hint_rows"] == step_K
        total_K += step_K
        # advantages: r - mean(r), zero-sum per group (invariant 14)
        assert torch.allclose(a, rewards - rewards.mean(dim=1, keepdim=True))
        assert torch.allclose(a.sum(1), torch.zeros(3), atol=1e-6)
        # entropy filter inside the loop (invariant 17): kept = max(1, int(tau * n)) per row with n hints in the loss
        from igpo_kit.rl.logprobs import completion_mask

        in_loss = b.hint_mask & completion_mask(b.sequences[:, -L:], model.eos_id)
        n_per_row = in_loss.sum(1).tolist()
        assert m["hint_tokens"] == sum(n_per_row)
        assert m["hint_tokens_kept"] == sum(max(1, int(tau * n)) for n in n_per_row if n > 0)
        assert m["n_hint_tokens"] == m["hint_tokens_kept"]
        assert (m["hint_tokens_policy_ratio"] is None) == (m["hint_tokens_kept"] == 0)
        assert abs(m["first_step_policy_ratio"] - 1) < 1e-5
        assert m["rescued_fraction"] == (sum(1 for n in triggered if b.correctness[n].sum() > 0) / len(triggered)
                                         if triggered else 0.0)
        assert m["all_wrong_ratio_after"] <= m["all_wrong_ratio_before"]
    assert total_K > 0 and seen_above_cap and seen_below_cap, (total_K, seen_above_cap, seen_below_cap)
    assert any(m["hint_tokens_policy_ratio"] is not None for m in metrics)
    # reference = frozen copy of the initial policy: KL 0 at the first inner step, > 0 once the policy moved
    assert abs(metrics[0]["first_step_kl"]) < 1e-7 and metrics[1]["first_step_kl"] > 0
    assert list(metrics[0])[:len(METRIC_KEYS)] == list(METRIC_KEYS)
    json.dumps(metrics)  # null, not NaN, where a kind of token is absent


def test_grpo_never_inpaints_and_resample_uses_no_hints(tiny_lm_factory, tmp_path):
    from igpo_kit.components import replacement_policy

    for name, policy in (("none", replacement_policy.none()), ("resample", replacement_policy.resample())):
        run = Run(tmp_path / name)
        train_rl(tiny_lm_factory(), z_examples(), components(replacement=policy), settings(max_steps=1, inner_iters=1),
                 run)
        m = run.metrics()[0]
        assert m["hint_rows"] == 0 and m["hint_tokens"] == 0 and m["inpaint_hint_tokens"] == 0
        assert m["triggered_groups"] == (0 if name == "none" else 2)
        assert m["rollouts_sampled"] == (8 if name == "none" else 16)
        assert (m["inpaint_s"] == 0) == (name == "none")


def test_lora_reference_is_the_base_under_the_disabled_adapter(tiny_lm_factory, tmp_path):
    pytest.importorskip("peft")
    from igpo_kit.entry.rl import _with_lora

    state = torch.random.get_rng_state()
    a = _with_lora(tiny_lm_factory(), 4, 8, 0.0, ["q_proj", "v_proj"], seed=3)
    b = _with_lora(tiny_lm_factory(), 4, 8, 0.0, ["q_proj", "v_proj"], seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    sa, sb = a.network.state_dict(), b.network.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # same seed, same adapter
    base = {k: v.clone() for k, v in sa.items() if "lora_" not in k}
    run = Run(tmp_path / "run")
    train_rl(a, z_examples(), components(), settings(max_steps=2, inner_iters=1, learning_rate=1e-2), run, lora=True)
    m = run.metrics()
    assert m[0]["first_step_kl"] == 0.0 and abs(m[0]["first_step_policy_ratio"] - 1) < 1e-5
    assert m[1]["first_step_kl"] > 0  # the adapter moved; the reference (adapter disabled) did not
    after = a.network.state_dict()
    assert all(torch.equal(after[k], v) for k, v in base.items())  # base weights frozen
    assert any(not torch.equal(after[k], sb[k]) for k in sa if "lora_B" in k)
    assert (run.dir / "model" / "config.json").exists()  # merged model saved


def test_bad_settings_are_config_errors(tiny_lm_factory, tmp_path):
    from igpo_kit.errors import ConfigError

    with pytest.raises(ConfigError, match="group_size"):
        train_rl(tiny_lm_factory(), z_examples(), components(), settings(group_size=1), Run(tmp_path / "a"))
    with pytest.raises(ConfigError, match="inner_iters"):
        train_rl(tiny_lm_factory(), z_examples(), components(), settings(inner_iters=0), Run(tmp_path / "b"))


def test_dataset_smaller_than_one_step_is_refused_not_a_hang(tiny_lm_factory, tmp_path):
    """Fewer examples than prompts_per_step x processes (or none): a ConfigError, not an endless epoch loop."""
    import signal

    from igpo_kit.errors import ConfigError

    def hang(*_):
        raise TimeoutError("train_rl did not return: the data loop hangs")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(120)
    try:
        for n in (1, 0):
            with pytest.raises(ConfigError, match=rf"has {n} example\(s\), fewer than one step's worth: "
                                                  r"prompts_per_step \(2\) x processes \(1\) = 2"):
                train_rl(tiny_lm_factory(), z_examples(n), components(), settings(), Run(tmp_path / f"n{n}"))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_micro_batches_give_the_same_update(tiny_lm_factory, tmp_path):
    """Gradient accumulation over micro-batches (rows split 8 -> 3+3+2) matches one full batch."""
    runs = {}
    for mb in (None, 3):
        model = tiny_lm_factory()
        run = Run(tmp_path / f"mb{mb}")
        train_rl(model, z_examples(), components(), settings(max_steps=1, inner_iters=1, micro_batch_size=mb), run)
        runs[mb] = (run.metrics()[0], model.network.state_dict())
    (m1, w1), (m2, w2) = runs[None], runs[3]
    for k in ("loss", "kl", "policy_ratio", "grad_norm", "n_generated_tokens", "replaced_rows_K"):
        assert m1[k] == pytest.approx(m2[k], rel=1e-5, abs=1e-7), k
    # one AdamW step moves every weight by ~lr = 1e-3; the two agree to a small fraction of that
    assert all(torch.allclose(w1[k], w2[k], atol=1e-4) for k in w1)


def test_deepspeed_config_resolution(monkeypatch):
    """recipes/deepspeed/zero2.json loads and its "auto" values are filled from the loop's settings."""
    from igpo_kit.errors import ConfigError
    from igpo_kit.rl.distributed import resolve_deepspeed_config

    cfg = resolve_deepspeed_config("recipes/deepspeed/zero2.json", micro_batch_size=8, max_grad_norm=0.2,
                                   world_size=64, bf16=True)
    assert cfg["zero_optimization"]["stage"] == 2 and cfg["bf16"]["enabled"] is True
    assert cfg["train_micro_batch_size_per_gpu"] == 8 and cfg["gradient_accumulation_steps"] == 1
    assert cfg["train_batch_size"] == 512 and cfg["gradient_clipping"] == 0.2  # paper: effective batch 512
    assert "auto" not in json.dumps(cfg)
    assert resolve_deepspeed_config("recipes/deepspeed/zero2.json", 4, 1.0, world_size=1, bf16=False)["bf16"] == {
        "enabled": False}
    with pytest.raises(ConfigError, match="gradient_accumulation_steps"):
        resolve_deepspeed_config({"gradient_accumulation_steps": 4}, 4, 1.0)
    with pytest.raises(ConfigError, match="not found"):
        resolve_deepspeed_config("recipes/deepspeed/nope.json", 4, 1.0)
    with pytest.raises(ConfigError, match="optimizer.params.lr"):
        resolve_deepspeed_config({"optimizer": {"params": {"lr": "auto"}}}, 4, 1.0)
    # the plugin accepts the resolved config (constructing it needs no GPU and no process group)
    from accelerate.utils import DeepSpeedPlugin

    plugin = DeepSpeedPlugin(hf_ds_config=cfg)
    assert plugin.zero_stage == 2 and plugin.deepspeed_config["gradient_clipping"] == 0.2


def test_deepspeed_over_cpu_processes_is_refused(monkeypatch):
    from igpo_kit.errors import ConfigError
    from igpo_kit.rl.distributed import make_accelerator

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="needs GPUs"):
        make_accelerator("recipes/deepspeed/zero2.json", 8, 1.0)


def test_lora_targets_must_exist_in_the_model(tiny_lm_factory):
    pytest.importorskip("peft")
    from igpo_kit.entry.rl import _with_lora
    from igpo_kit.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\['attn_out', 'ff_proj', 'ff_out'\] match no linear module.*q_proj"):
        _with_lora(tiny_lm_factory(), 4, 8, 0.0, ["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj",
                                                 "ff_out"])


def test_resume_with_another_lora_rank_or_targets_names_both(tiny_lm_factory, tmp_path):
    pytest.importorskip("peft")
    from igpo_kit.entry.rl import _with_lora
    from igpo_kit.errors import ConfigError

    run = Run(tmp_path / "run")
    quick = dict(max_steps=1, inner_iters=1, prompts_per_step=1)
    train_rl(_with_lora(tiny_lm_factory(), 4, 8, 0.0, ["q_proj", "v_proj"]), z_examples(), components(),
             settings(**quick), run, lora=True)
    with pytest.raises(ConfigError, match=r"written with LoRA rank 4 on q_proj, v_proj, this run has LoRA rank 8 "
                                          r"on q_proj \("):
        train_rl(_with_lora(tiny_lm_factory(), 8, 8, 0.0, ["q_proj"]), z_examples(), components(),
                 settings(**quick), run, lora=True)
    with pytest.raises(ConfigError, match=r"this run has no LoRA \(full fine-tuning\)"):
        train_rl(tiny_lm_factory(), z_examples(), components(), settings(**quick), run)


def test_rl_loop_with_checkpointing_equals_without(tiny_lm_factory, tmp_path):
    from igpo_kit.models.checkpointing import is_checkpointing

    out = {}
    for gc in (False, True):
        model, run = tiny_lm_factory(), Run(tmp_path / f"gc{gc}")
        train_rl(model, z_examples(), components(), settings(max_steps=2, inner_iters=2, prompts_per_step=1,
                                                             gradient_checkpointing=gc), run)
        out[gc] = ([{k: v for k, v in m.items() if not k.endswith("_s")} for m in run.metrics()],
                   model.network.state_dict())
        assert is_checkpointing(model.network) == gc
    assert out[True][0] == out[False][0]
    assert all(torch.allclose(out[True][1][k], out[False][1][k], atol=1e-6) for k in out[True][1])
