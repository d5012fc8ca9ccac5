"""The IGPO / GRPO training loop. It orchestrates registered components and owns nothing else.

Per rollout step (Alg. 1): rollouts + grading + trigger + one batched inpainting call + replacement
(:func:`igpo_kit.rl.rollout.collect`), advantages (Eq. 2), old and reference log-probs and entropies computed
ONCE per rollout batch, the entropy filter over hint tokens, then ``mu`` (inner_iters) optimizer steps of the
clipped surrogate + beta * KL loss (Eq. 3-5). All forward passes run with dropout off, so the policy ratio is
exactly 1 at the first inner step. Randomness comes only from generators owned here, seeded from ``seed`` and
the process rank; checkpoints hold their states, so a killed run resumes bit-for-bit.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from igpo_kit.models.base import DiffusionLM

GENERATORS = ("data", "rollout", "hints", "replace", "logprob")


@dataclass
class RLSettings:
    """Plain settings of the loop (paper Table 2 names in brackets).

    group_size: G, rollouts per prompt. prompts_per_step: prompts per rollout batch on each process.
    max_steps: optimizer steps in total. inner_iters: mu, optimizer steps per rollout batch.
    learning_rate, warmup_steps, decay_steps (linear decay to 0 over decay_steps, default max_steps),
    weight_decay, adam_betas, max_grad_norm: AdamW and clipping. hint_ratio_low/high: eta ~ U[low, high].
    format_weight: weight of the format reward added to correctness. micro_batch_size: rows per backward.
    """

    group_size: int = 8
    prompts_per_step: int = 1
    max_steps: int = 1440
    inner_iters: int = 4
    learning_rate: float = 5e-7
    warmup_steps: int = 50
    decay_steps: int | None = None
    weight_decay: float = 0.1
    adam_betas: tuple[float, float] = (0.9, 0.99)
    max_grad_norm: float = 0.2
    hint_ratio_low: float = 0.2
    hint_ratio_high: float = 0.6
    format_weight: float = 0.0
    micro_batch_size: int | None = None
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    grade_timeout_s: float = 5.0
    grade_workers: int = 2
    seed: int = 0


@dataclass
class Components:
    """The registered components a run is built from."""

    sampler: Any
    grader: Any
    prompt: Any
    hint_chunker: Any
    replacement_policy: Any
    entropy_filter: Any
    advantage_estimator: Any
    logprob_estimator: Any
    loss: Any
    format_grader: Any = None
    trace_corruption: Any = None


@dataclass
class _State:
    step: int = 0  # optimizer steps done
    rollouts: int = 0  # rollout batches done
    data_pos: int = 0  # examples consumed in the current epoch
    epoch: int = 0
    metric_lines: int = 0
    extra: dict = field(default_factory=dict)


def linear_schedule(warmup_steps: int, decay_steps: int):
    """LR multiplier: linear warmup over ``warmup_steps``, then linear decay to 0 at ``decay_steps``."""

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return max(0.0, (decay_steps - step) / max(1, decay_steps - warmup_steps))

    return f


def _epoch_order(n: int, epoch: int, seed: int) -> list[int]:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def _next_examples(examples: list, state: _State, k: int, rank: int, world: int, seed: int) -> list:
    """The next ``k`` examples of this process (each epoch is a seeded permutation, sharded over ranks)."""
    out = []
    per_step = k * world
    while len(out) < k:
        order = _epoch_order(len(examples), state.epoch, seed)
        if state.data_pos + per_step > len(order):
            state.epoch, state.data_pos = state.epoch + 1, 0
            continue
        block = order[state.data_pos:state.data_pos + per_step]
        out = [examples[i] for i in block[rank * k:(rank + 1) * k]]
        state.data_pos += per_step
    return out


def make_reference(model: DiffusionLM, lora: bool) -> DiffusionLM | None:
    """pi_ref: the frozen base weights (a disabled LoRA adapter) or a frozen copy of the initial policy."""
    if lora:
        return None  # the policy network under `disable_adapter()` is the reference
    ref = copy.deepcopy(model.network).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return DiffusionLM(**{**model.__dict__, "network": ref})


def train_rl(model: DiffusionLM, examples: list, components: Components, settings: RLSettings, run,
             lora: bool = False, accelerator=None) -> dict[str, Any]:
    """Train ``model`` with IGPO/GRPO; returns final metrics. Resumes from ``run``'s latest checkpoint.

    The reference policy is kept only when the loss has a KL term (``components.loss.kl_beta > 0``).
    """
    from accelerate import Accelerator
    from rich.console import Console

    from igpo_kit.checkpoint import (capture_generators, load_latest, model_dir, restore_generators,
                                     save_checkpoint)
    from igpo_kit.grading.pool import GradingPool
    from igpo_kit.rl.logprobs import completion_mask
    from igpo_kit.rl.rollout import collect

    acc = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    rank, world = acc.process_index, acc.num_processes
    c, s = components, settings
    kl_beta = float(getattr(c.loss, "kl_beta", 0.0))
    G, mu = s.group_size, s.inner_iters
    if G < 2:
        from igpo_kit.errors import ConfigError

        raise ConfigError(f"group_size (G) must be >= 2 for group-relative advantages, got {G}")
    network = model.network
    ref_model = make_reference(model, lora) if kl_beta > 0 else None
    optimizer = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad], lr=s.learning_rate,
                                  betas=tuple(s.adam_betas), weight_decay=s.weight_decay)
    decay = s.decay_steps or s.max_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(s.warmup_steps, decay))
    network, optimizer, scheduler = acc.prepare(network, optimizer, scheduler)
    policy = DiffusionLM(**{**model.__dict__, "network": network})
    gens = {name: torch.Generator(device="cpu").manual_seed(s.seed * 7919 + 104729 * rank + i)
            for i, name in enumerate(GENERATORS)}
    if acc.device.type == "cuda":
        gens["rollout"] = torch.Generator(device=acc.device).manual_seed(s.seed * 7919 + 104729 * rank + 1)
    state = _State()
    resumed = load_latest(run.dir)
    if resumed is not None:
        ckpt, st = resumed
        weights = torch.load(model_dir(ckpt) / "network.pt", map_location="cpu", weights_only=True)
        acc.unwrap_model(network).load_state_dict(weights)
        optimizer.load_state_dict(st["optimizer"])
        scheduler.load_state_dict(st["scheduler"])
        restore_generators(gens, st["generators"][rank] if isinstance(st["generators"], list) else st["generators"])
        state = _State(**{k: st["loop"][k] for k in ("step", "rollouts", "data_pos", "epoch", "metric_lines")})
        if acc.is_main_process:
            Console(stderr=True).print(f"resumed from {ckpt.name} (step {state.step})")
    if acc.is_main_process:  # drop lines logged after the checkpoint we restart from (all of them on a fresh start)
        run.truncate_metrics(state.metric_lines)
    console = Console(stderr=True)
    grade_pool = GradingPool(workers=s.grade_workers)  # forked once, reused by every step; closed below or at exit
    trace_cache: dict = {}
    network.eval()  # dropout off everywhere: old/current/ref log-probs come from the same function
    last: dict[str, Any] = {}
    while state.step < s.max_steps:
        t_step = time.perf_counter()
        batch_examples = _next_examples(examples, state, s.prompts_per_step, rank, world, s.seed)
        batch = collect(policy, batch_examples, c.prompt, c.sampler, c.grader, c.format_grader, G, c.hint_chunker,
                        c.replacement_policy, s.hint_ratio_low, s.hint_ratio_high, gens, s.grade_timeout_s,
                        s.grade_workers, trace_cache, c.trace_corruption, grade_pool)
        rewards = batch.correctness + s.format_weight * batch.fmt
        adv = c.advantage_estimator(rewards).reshape(-1).to(batch.sequences.device)
        P = batch.prompt_length
        t0 = time.perf_counter()
        with torch.no_grad():
            old = c.logprob_estimator(policy, batch.sequences, P, batch.attention_mask, generator=gens["logprob"])
            ref_lp = None
            if kl_beta > 0:
                if ref_model is None:
                    with acc.unwrap_model(network).disable_adapter():
                        ref_lp = c.logprob_estimator(policy, batch.sequences, P, batch.attention_mask,
                                                     generator=gens["logprob"], compute_entropy=False).logps
                else:
                    ref_lp = c.logprob_estimator(ref_model, batch.sequences, P, batch.attention_mask,
                                                 generator=gens["logprob"], compute_entropy=False).logps
        logprob_s = time.perf_counter() - t0
        loss_mask = completion_mask(batch.sequences[:, P:], model.eos_id)
        kept = c.entropy_filter(old.entropies, batch.hint_mask, loss_mask)
        t0 = time.perf_counter()
        rows = batch.sequences.shape[0]
        mb = s.micro_batch_size or rows
        agg: dict[str, float] = {}
        for it in range(mu):
            if state.step >= s.max_steps:
                break
            optimizer.zero_grad(set_to_none=True)
            for start in range(0, rows, mb):
                sl = slice(start, min(rows, start + mb))
                cur = c.logprob_estimator(policy, batch.sequences[sl], P, batch.attention_mask[sl],
                                          generator=gens["logprob"], compute_entropy=False)
                loss, stats = c.loss(cur.logps, old.logps[sl], None if ref_lp is None else ref_lp[sl], adv[sl],
                                     kept[sl], batch.hint_mask[sl])
                acc.backward(loss * (sl.stop - sl.start) / rows)
                for k, v in stats.items():
                    agg[k] = agg.get(k, 0.0) + float(v) * (sl.stop - sl.start) / rows / mu
                if it == 0 and start == 0:
                    agg["first_step_policy_ratio"] = float(stats.get("policy_ratio", float("nan")))
                agg["loss"] = agg.get("loss", 0.0) + loss.item() * (sl.stop - sl.start) / rows / mu
            grad_norm = acc.clip_grad_norm_(network.parameters(), s.max_grad_norm)
            optimizer.step()
            scheduler.step()
            state.step += 1
            agg["grad_norm"] = float(grad_norm)
        update_s = time.perf_counter() - t0
        state.rollouts += 1
        metrics = {
            "step": state.step, "rollout": state.rollouts, "epoch": state.epoch,
            "reward": rewards.mean().item(), "accuracy": batch.correctness.mean().item(),
            **batch.stats, **agg,
            "entropy": old.entropies[loss_mask].mean().item() if loss_mask.any() else 0.0,
            "hint_tokens": int(batch.hint_mask.sum()), "hint_tokens_kept": int((batch.hint_mask & kept).sum()),
            "completion_length": loss_mask.sum(1).float().mean().item(),
            "lr": scheduler.get_last_lr()[0], "logprob_s": logprob_s, "update_s": update_s,
            "step_s": time.perf_counter() - t_step,
        }
        if world > 1:
            metrics = _mean_over_ranks(acc, metrics)
        if acc.is_main_process:
            run.log(metrics)
            state.metric_lines += 1
            console.print(_live_line(metrics), highlight=False)
        last = metrics
        if state.rollouts % s.checkpoint_every == 0 or state.step >= s.max_steps:
            all_gens = acc.gather_for_metrics([capture_generators(gens)], use_gather_object=True) if world > 1 \
                else [capture_generators(gens)]
            if acc.is_main_process:
                unwrapped = acc.unwrap_model(network)
                save_checkpoint(run.dir, state.step, {
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "generators": all_gens, "loop": state.__dict__ | {"extra": {}},
                }, model_dir_writer=lambda p: torch.save(unwrapped.state_dict(), p / "network.pt"),
                    keep=s.keep_checkpoints)
            acc.wait_for_everyone()
    grade_pool.close()
    if acc.is_main_process:
        out = run.dir / "model"
        unwrapped = acc.unwrap_model(network)
        if hasattr(unwrapped, "merge_and_unload") and lora:
            unwrapped = copy.deepcopy(unwrapped).merge_and_unload()
        unwrapped.save_pretrained(out)
        model.tokenizer.save_pretrained(out)
    return {"steps": state.step, **{k: last.get(k) for k in ("reward", "accuracy", "all_wrong_ratio_before",
                                                                "all_wrong_ratio_after")}}


def _mean_over_ranks(acc, metrics: dict) -> dict:
    keys = [k for k, v in metrics.items() if isinstance(v, (int, float))]
    t = torch.tensor([float(metrics[k]) for k in keys], device=acc.device)
    t = acc.reduce(t, reduction="mean")
    return {**metrics, **{k: (int(round(v)) if isinstance(metrics[k], int) else float(v))
                          for k, v in zip(keys, t.tolist())}}


def _live_line(m: dict) -> str:
    return (f"step {m['step']:>5}  reward {m['reward']:.3f}  acc {m['accuracy']:.3f}  "
            f"all-wrong {m.get('all_wrong_ratio_before', 0):.2f}->{m.get('all_wrong_ratio_after', 0):.2f}  "
            f"K {m.get('replaced_rows_K', 0):.0f}  kl {m.get('kl', 0):.4f}  loss {m.get('loss', 0):+.4f}  "
            f"[rollout {m.get('rollout_s', 0):.1f}s inpaint {m.get('inpaint_s', 0):.1f}s grade {m.get('grading_s', 0):.1f}s "
            f"logp {m.get('logprob_s', 0):.1f}s update {m.get('update_s', 0):.1f}s]")
