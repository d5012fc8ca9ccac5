"""The IGPO / GRPO training loop. It orchestrates registered components and owns nothing else.

Per rollout step (Alg. 1): rollouts + grading + trigger + one batched inpainting call (with several processes: the
inpainting rows of all of them spread evenly, :mod:`igpo_kit.rl.balance`) + replacement
(:func:`igpo_kit.rl.rollout.collect`), advantages (Eq. 2), old and reference log-probs and entropies computed
ONCE per rollout batch, the entropy filter over hint tokens, then ``mu`` (inner_iters) optimizer steps of the
clipped surrogate + beta * KL loss (Eq. 3-5), AdamW with linear warmup + decay and gradient clipping. All forward
passes run with dropout off, so the policy ratio is exactly 1 at the first inner step. Randomness comes only from
generators owned here, seeded from ``seed`` and the process rank; checkpoints hold their states, so a killed run
resumes bit-for-bit (tests/entry/test_rl_job.py).

Parallelism through accelerate (:mod:`igpo_kit.rl.distributed`): data parallel over processes (each draws its own
prompts and rollout noise; gradients are averaged; 2 CPU processes work with gloo), or DeepSpeed ZeRO-2 with a
DeepSpeed config (micro-batches accumulate up to the engine's boundary; every rank's ZeRO shards go into the
checkpoint). Only the main
process writes metrics, checkpoints and the final model (``<run>/model``, LoRA merged).
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from igpo_kit.models.base import DiffusionLM
from igpo_kit.rl.settings import RLSettings
from igpo_kit.schedules import rl_linear

GENERATORS = ("data", "rollout", "hints", "replace", "logprob")


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




def _epoch_order(n: int, epoch: int, seed: int) -> list[int]:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def _next_examples(examples: list, state: _State, k: int, rank: int, world: int, seed: int) -> list:
    """The next ``k`` examples of this process (each epoch is a seeded permutation, sharded over ranks)."""
    out = []
    per_step = k * world
    if len(examples) < per_step:  # otherwise no epoch ever holds one step's worth: the loop would never end
        from igpo_kit.errors import ConfigError

        raise ConfigError(f"the RL dataset has {len(examples)} example(s), fewer than one step's worth: "
                          f"prompts_per_step ({k}) x processes ({world}) = {per_step}")
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

    Args:
        model: the policy (its network is trained in place).
        examples: training :class:`~igpo_kit.data.examples.Example` s (with ground-truth traces for IGPO).
        components, settings: the run's components and loop settings.
        run: a :class:`~igpo_kit.runs.Run` (``metrics.jsonl``, ``checkpoints/``, ``model/`` are written under it).
        lora: the network is a peft LoRA model; the reference is then its base weights (adapter disabled).
        accelerator: an ``accelerate.Accelerator`` (default: DDP/single process, see
            :func:`igpo_kit.rl.distributed.make_accelerator`; pass one built with a DeepSpeed config for ZeRO).

    The reference policy is kept only when the loss has a KL term (``components.loss.kl_beta > 0``).
    Metrics (one ``metrics.jsonl`` line per rollout batch, written by the main process) are listed in
    :data:`METRIC_KEYS`; token statistics of the loss are averaged over the kept tokens of that kind in all inner
    iterations and processes (``None`` when there were none), other values are means over processes.
    """
    from rich.console import Console

    from igpo_kit.checkpoint import (capture_generators, has_frozen_parameters, load_file, load_latest,
                                     load_trainable_state_dict, model_dir, restore_generators, save_checkpoint)
    from igpo_kit.errors import ConfigError
    from igpo_kit.grading.pool import GradingPool
    from igpo_kit.models.checkpointing import checkpoint_in_eval, enable_gradient_checkpointing
    from igpo_kit.models.precision import fp32_master_weights
    from igpo_kit.rl.balance import Exchange
    from igpo_kit.rl.distributed import is_deepspeed, make_accelerator
    from igpo_kit.rl.logprobs import completion_mask, in_micro_batches
    from igpo_kit.rl.rollout import RolloutSetup, collect

    c, s = components, settings
    G, mu = s.group_size, s.inner_iters
    if G < 2:
        raise ConfigError(f"group_size (G) must be >= 2 for group-relative advantages, got {G}")
    if mu < 1:
        raise ConfigError(f"inner_iters (mu) must be >= 1, got {mu}")
    rows = s.prompts_per_step * G
    mb = s.micro_batch_size or rows
    acc = accelerator or make_accelerator()
    rank, world = acc.process_index, acc.num_processes
    deepspeed = is_deepspeed(acc)
    kl_beta = float(getattr(c.loss, "kl_beta", 0.0))
    network = model.network
    if s.gradient_checkpointing:
        enable_gradient_checkpointing(network, model.name)
    frozen = has_frozen_parameters(network)  # checkpoints then hold only what trains (e.g. the LoRA adapter)
    ref_model = make_reference(model, lora) if kl_beta > 0 else None
    if not deepspeed and acc.mixed_precision == "bf16":  # bf16 autocast, fp32 master weights (DeepSpeed: its own)
        fp32_master_weights(network)  # after the reference copy, which stays in the loaded dtype
    optimizer = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad], lr=s.learning_rate,
                                  betas=tuple(s.adam_betas), weight_decay=s.weight_decay)
    decay = s.decay_steps or s.max_steps
    # stepped here once per optimizer step; not handed to accelerate, whose scheduler wrapper would step it once
    # per process (it assumes a dataloader sharded over processes) and so run the schedule `world` times too fast
    scheduler = rl_linear(optimizer, s.warmup_steps, decay)
    network, optimizer = acc.prepare(network, optimizer)
    if ref_model is not None and ref_model.network is not None:
        ref_model.network.to(acc.device)
    policy = DiffusionLM(**{**model.__dict__, "network": network})
    gens = {name: torch.Generator(device="cpu").manual_seed(s.seed * 7919 + 104729 * rank + i)
            for i, name in enumerate(GENERATORS)}
    if acc.device.type == "cuda":
        gens["rollout"] = torch.Generator(device=acc.device).manual_seed(s.seed * 7919 + 104729 * rank + 1)
    state = _State()
    resumed = load_latest(run.dir)
    if resumed is not None:
        ckpt, st = resumed
        saved_gens = st["generators"]
        if isinstance(saved_gens, list) and len(saved_gens) != world:
            raise ConfigError(f"{ckpt} was written by {len(saved_gens)} process(es); resume it with as many "
                              f"(this run has {world})")
        if "lora" in st:  # checkpoints of older versions do not say
            _check_same_lora(ckpt, st["lora"], lora_signature(acc.unwrap_model(network)))
        if deepspeed:  # a run with frozen weights saved only the trainable ones (exclude_frozen_parameters)
            network.load_checkpoint(str(model_dir(ckpt) / "deepspeed"), tag="ds", load_optimizer_states=True,
                                    load_lr_scheduler_states=False, load_module_strict=not frozen)
        elif (model_dir(ckpt) / TRAINABLE_FILE).is_file():
            weights = load_file(model_dir(ckpt) / TRAINABLE_FILE)
            load_trainable_state_dict(acc.unwrap_model(network), weights, where=ckpt)
            optimizer.load_state_dict(st["optimizer"])
        else:
            weights = load_file(model_dir(ckpt) / "network.pt")
            acc.unwrap_model(network).load_state_dict(weights)
            optimizer.load_state_dict(st["optimizer"])
        scheduler.load_state_dict(st["scheduler"])
        restore_generators(gens, saved_gens[rank] if isinstance(saved_gens, list) else saved_gens)
        state = _State(**{k: st["loop"][k] for k in ("step", "rollouts", "data_pos", "epoch", "metric_lines")})
        if acc.is_main_process:
            Console(stderr=True).print(f"resumed from {ckpt.name} (step {state.step})")
    if acc.is_main_process:  # drop lines logged after the checkpoint we restart from (all of them on a fresh start)
        run.truncate_metrics(state.metric_lines)
    console = Console(stderr=True)
    grade_pool = GradingPool(workers=s.grade_workers)  # forked once, reused by every step; closed below or at exit
    trace_cache: dict = {}
    setup = RolloutSetup(prompt=c.prompt, sampler=c.sampler, grader=c.grader, hint_chunker=c.hint_chunker,
                         replacement_policy=c.replacement_policy, group_size=G, hint_ratio_low=s.hint_ratio_low,
                         hint_ratio_high=s.hint_ratio_high, format_grader=c.format_grader,
                         trace_corruption=c.trace_corruption, grade_timeout_s=s.grade_timeout_s,
                         grade_workers=s.grade_workers)
    exchange = Exchange(rank, world) if world > 1 and s.balance_inpainting else None
    network.eval()  # dropout off everywhere: old/current/ref log-probs come from the same function
    checkpoint_in_eval(network)  # checkpointed layers (if any) recompute in the backward, dropout stays off
    last: dict[str, Any] = {}
    from igpo_kit.progress import Progress

    progress = Progress("rl steps", s.max_steps, done=state.step, enabled=acc.is_main_process).start()
    ok = False
    try:
        while state.step < s.max_steps:
            t_step = time.perf_counter()
            batch_examples = _next_examples(examples, state, s.prompts_per_step, rank, world, s.seed)
            batch = collect(policy, batch_examples, setup, gens, trace_cache, grade_pool, exchange=exchange)
            rewards = batch.correctness + s.format_weight * batch.fmt
            adv = c.advantage_estimator(rewards).reshape(-1).to(batch.sequences.device)
            P = batch.prompt_length
            pad = None if bool(batch.attention_mask.all()) else batch.attention_mask  # one host sync per batch
            t0 = time.perf_counter()
            with torch.no_grad():  # pi_old and pi_ref: once per rollout batch (not mu times), mb rows at a time
                old = in_micro_batches(c.logprob_estimator, policy, batch.sequences, P, pad, mb,
                                       generator=gens["logprob"])
                ref_lp = None
                if kl_beta > 0:
                    if ref_model is None:
                        with acc.unwrap_model(network).disable_adapter():
                            ref_lp = in_micro_batches(c.logprob_estimator, policy, batch.sequences, P,
                                                      pad, mb, generator=gens["logprob"],
                                                      compute_entropy=False).logps
                    else:
                        ref_lp = in_micro_batches(c.logprob_estimator, ref_model, batch.sequences, P,
                                                  pad, mb, generator=gens["logprob"],
                                                  compute_entropy=False).logps
            logprob_s = time.perf_counter() - t0
            loss_mask = completion_mask(batch.sequences[:, P:], model.eos_id)
            kept = c.entropy_filter(old.entropies, batch.hint_mask, loss_mask)
            t0 = time.perf_counter()
            n_rows = batch.sequences.shape[0]
            agg = _Agg()
            for it in range(mu):
                if state.step >= s.max_steps:
                    break
                optimizer.zero_grad(set_to_none=True)
                starts = list(range(0, n_rows, mb))
                for start in starts:
                    sl = slice(start, min(n_rows, start + mb))
                    frac = (sl.stop - sl.start) / n_rows
                    last = start == starts[-1]
                    with _accumulating(acc, network, last, deepspeed, world):
                        cur = c.logprob_estimator(policy, batch.sequences[sl], P, None if pad is None else pad[sl],
                                                  generator=gens["logprob"], compute_entropy=False)
                        loss, stats = c.loss(cur.logps, old.logps[sl], None if ref_lp is None else ref_lp[sl],
                                             adv[sl], kept[sl], batch.hint_mask[sl])
                        if deepspeed:  # the engine's backward alone; it steps once, at the boundary, below
                            network.backward(loss * frac)
                        else:
                            acc.backward(loss * frac)
                    agg.add_loss_stats(stats, float(loss.detach()), frac, first=it == 0)
                if deepspeed:
                    network.step()  # clips at gradient_clipping = max_grad_norm, steps, zeroes the gradients
                    grad_norm = network.get_global_grad_norm()
                else:
                    grad_norm = acc.clip_grad_norm_(network.parameters(), s.max_grad_norm)
                    optimizer.step()
                scheduler.step()
                state.step += 1
                agg.add("grad_norm", float("nan") if grad_norm is None else float(grad_norm), 1.0)
            _sync(acc.device)
            update_s = time.perf_counter() - t0
            state.rollouts += 1
            hint_in_loss = batch.hint_mask & loss_mask
            plain = {
                "step": state.step, "rollout": state.rollouts, "epoch": state.epoch,
                "reward": rewards.mean().item(), "accuracy": batch.correctness.mean().item(),
                **batch.stats,
                "hint_rows": int(batch.hint_mask.any(dim=1).sum()),
                "hint_tokens": int(hint_in_loss.sum()), "hint_tokens_kept": int((hint_in_loss & kept).sum()),
                "completion_length": loss_mask.sum(1).float().mean().item(),
                "lr": scheduler.get_last_lr()[0], "logprob_s": logprob_s, "update_s": update_s,
                "step_s": time.perf_counter() - t_step,
            }
            ent_w = float(loss_mask.sum())
            agg.add("entropy", float(old.entropies[loss_mask].sum()) / ent_w if ent_w else 0.0, ent_w)
            metrics = agg.finish(acc if world > 1 else None, plain)
            metrics["step_s"] = time.perf_counter() - t_step
            if acc.is_main_process:
                run.log(metrics)
                state.metric_lines += 1
                console.print(_live_line(metrics), highlight=False, markup=False, soft_wrap=True)
                progress.update(state.step, status=f"rollout {state.rollouts}  reward {metrics.get('reward') or 0:.3f}")
            last = metrics
            if state.rollouts % s.checkpoint_every == 0 or state.step >= s.max_steps:
                _checkpoint(acc, run, network, optimizer, scheduler, gens, state, s, deepspeed, world, frozen,
                            console)
        ok = True
    finally:
        progress.close(ok)
        grade_pool.close()
    if acc.is_main_process and s.save_model:
        out = run.dir / "model"
        unwrapped = acc.unwrap_model(network)
        if hasattr(unwrapped, "merge_and_unload") and lora:
            unwrapped = copy.deepcopy(unwrapped).merge_and_unload()
        unwrapped.save_pretrained(out)
        model.tokenizer.save_pretrained(out)
    acc.wait_for_everyone()
    return {"steps": state.step, **{k: last.get(k) for k in ("reward", "accuracy", "all_wrong_ratio_before",
                                                                "all_wrong_ratio_after")}}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _accumulating(acc, network, last: bool, deepspeed: bool, world: int):
    """Gradients of a micro-batch accumulate; they are reduced over processes only at the last one (DDP: ``no_sync``
    before it; DeepSpeed: the engine's accumulation boundary, so ``micro_batch_size`` below the rows per step
    accumulates under ZeRO as without it)."""
    if deepspeed:
        network.set_gradient_accumulation_boundary(is_boundary=last)
        return contextlib.nullcontext()
    if world > 1 and not last:
        return acc.no_sync(network)
    return contextlib.nullcontext()


def _checkpoint(acc, run, network, optimizer, scheduler, gens, state, s, deepspeed, world, frozen, console) -> None:
    """Write checkpoint ``step_<n>`` atomically (main process), ``latest`` last, and log its size.

    Plain / DDP: ``model/network.pt`` (the state dict), or ``model/trainable.pt`` (only the parameters that train,
    e.g. a LoRA adapter, never its frozen base) when some weights are frozen, + the optimizer state in ``state.pt``.
    DeepSpeed: every rank writes its ZeRO shards with ``engine.save_checkpoint`` (``exclude_frozen_parameters`` when
    some weights are frozen) into ``checkpoints/deepspeed_staging/step_<n>`` (a collective call), then the main
    process moves that folder into the new checkpoint as ``model/deepspeed`` before publishing it, so ``latest``
    never names a checkpoint without its shards. ``state.pt`` records the LoRA rank and targets, checked on resume.
    """
    import os
    import shutil

    from igpo_kit.checkpoint import capture_generators, dir_size, save_checkpoint, trainable_state_dict

    all_gens = (acc.gather_for_metrics([capture_generators(gens)], use_gather_object=True) if world > 1
                else [capture_generators(gens)])
    staging = run.dir / "checkpoints" / "deepspeed_staging" / f"step_{state.step}"
    if deepspeed:
        if acc.is_main_process and staging.exists():
            shutil.rmtree(staging)
        acc.wait_for_everyone()
        network.save_checkpoint(str(staging), tag="ds", exclude_frozen_parameters=frozen)
        acc.wait_for_everyone()
    if acc.is_main_process:
        unwrapped = acc.unwrap_model(network)

        def write_model(p):
            if deepspeed:
                os.replace(staging, p / "deepspeed")
                with contextlib.suppress(OSError):
                    staging.parent.rmdir()
            elif frozen:
                torch.save(trainable_state_dict(unwrapped), p / TRAINABLE_FILE)
            else:
                torch.save(unwrapped.state_dict(), p / "network.pt")

        path = save_checkpoint(run.dir, state.step, {
            "optimizer": None if deepspeed else optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "generators": all_gens, "loop": state.__dict__ | {"extra": {}}, "world_size": world,
            "lora": lora_signature(unwrapped),
        }, model_dir_writer=write_model, keep=s.keep_checkpoints)
        what = "trainable weights only" if frozen else "all weights"
        console.print(f"checkpoint {path.name}: {dir_size(path) / 2**20:.2f} MiB ({what}, optimizer, generators, "
                      f"loop state)", highlight=False)
    acc.wait_for_everyone()


TRAINABLE_FILE = "trainable.pt"


def lora_signature(network) -> dict | None:
    """``{"rank", "target_modules"}`` of a peft LoRA network's adapter (None for a plain network)."""
    configs = getattr(network, "peft_config", None)
    if not configs:
        return None
    cfg = configs.get("default") or next(iter(configs.values()))
    targets = cfg.target_modules
    targets = [targets] if isinstance(targets, str) else sorted(targets)
    return {"rank": int(cfg.r), "target_modules": targets}


def _check_same_lora(ckpt, saved: dict | None, current: dict | None) -> None:
    """A checkpoint resumes only into the same adapter shape: exit 2 naming both otherwise."""
    from igpo_kit.errors import ConfigError

    def says(sig):
        return "no LoRA (full fine-tuning)" if sig is None else \
            f"LoRA rank {sig['rank']} on {', '.join(sig['target_modules'])}"

    if saved != current:
        raise ConfigError(f"cannot resume {ckpt}: it was written with {says(saved)}, this run has {says(current)} "
                          f"(resume with the checkpoint's lora_rank / lora_target_modules, or start with --fresh)")


#: Keys of every ``metrics.jsonl`` line (token statistics may be ``None`` when no token of that kind was in the loss).
METRIC_KEYS = (
    # progress
    "step", "rollout", "epoch", "lr", "rollouts_sampled", "inpaint_rows_sampled",
    # rewards and the rescue (Alg. 1 lines 3-10)
    "reward", "accuracy", "initial_correctness", "final_correctness", "all_wrong_ratio_before",
    "all_wrong_ratio_after", "triggered_groups", "rescued_fraction", "inpainted_correctness", "mean_hint_ratio",
    "inpaint_hint_tokens", "replaced_rows_K", "hint_rows", "hint_tokens", "hint_tokens_kept", "grade_timeouts",
    "completion_length",
    # the loss (Eq. 3-5), means over kept tokens of all inner iterations
    "loss", "kl", "entropy", "policy_ratio", "clip_fraction", "hint_tokens_policy_ratio",
    "generated_tokens_policy_ratio", "hint_tokens_clip_ratio", "generated_tokens_clip_ratio", "n_hint_tokens",
    "n_generated_tokens", "first_step_policy_ratio", "first_step_kl", "grad_norm",
    # wall time (seconds) of the step's parts
    "rollout_s", "inpaint_s", "grading_s", "logprob_s", "update_s", "step_s",
)

#: Loss statistics and the tokens each is averaged over ("all": every kept token).
_TOKEN_STATS = {
    "kl": "all", "policy_ratio": "all", "clip_fraction": "all",
    "hint_tokens_policy_ratio": "hint", "hint_tokens_clip_ratio": "hint",
    "generated_tokens_policy_ratio": "gen", "generated_tokens_clip_ratio": "gen",
}


class _Agg:
    """Weighted means of the loss statistics of one rollout batch, reducible over processes."""

    def __init__(self):
        self.sums: dict[str, list[float]] = {}

    def add(self, key: str, value: float, weight: float) -> None:
        cell = self.sums.setdefault(key, [0.0, 0.0])
        if weight > 0:
            cell[0] += value * weight
            cell[1] += weight

    def add_loss_stats(self, stats: dict, loss: float, frac: float, first: bool) -> None:
        n_hint, n_gen = float(stats.get("n_hint_tokens", 0.0)), float(stats.get("n_generated_tokens", 0.0))
        weights = {"all": n_hint + n_gen, "hint": n_hint, "gen": n_gen}
        for key, kind in _TOKEN_STATS.items():
            if key in stats:
                self.add(key, float(stats[key]), weights[kind])
        self.add("loss", loss, frac)
        if first:  # tokens in the loss are the same at every inner iteration: count them once
            self.sums.setdefault("n_hint_tokens", [0.0, 0.0])[0] += n_hint
            self.sums.setdefault("n_generated_tokens", [0.0, 0.0])[0] += n_gen
            self.add("first_step_policy_ratio", float(stats.get("policy_ratio", float("nan"))), weights["all"])
            if "kl" in stats:
                self.add("first_step_kl", float(stats["kl"]), weights["all"])

    def finish(self, acc, plain: dict) -> dict:
        """``plain`` (means over processes) merged with the weighted means (pooled over processes)."""
        for key in ("first_step_kl", "n_hint_tokens", "n_generated_tokens"):
            self.sums.setdefault(key, [0.0, 0.0])
        keys = [k for k, v in plain.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        wkeys = list(self.sums)  # n_*_tokens hold plain sums (kept tokens per process): mean over processes
        vec = [float(plain[k]) for k in keys] + [x for k in wkeys for x in self.sums[k]]
        if acc is not None:
            t = acc.reduce(torch.tensor(vec, dtype=torch.float64, device=acc.device), reduction="sum").tolist()
            world = acc.num_processes
        else:
            t, world = vec, 1
        out = dict(plain)
        for i, k in enumerate(keys):
            v = t[i] / world
            out[k] = int(round(v)) if isinstance(plain[k], int) else v
        base = len(keys)
        for j, k in enumerate(wkeys):
            total, weight = t[base + 2 * j], t[base + 2 * j + 1]
            if k in ("n_hint_tokens", "n_generated_tokens"):
                out[k] = total / world
            else:
                out[k] = total / weight if weight > 0 else None
        return {k: out.get(k) for k in METRIC_KEYS} | {k: v for k, v in out.items() if k not in METRIC_KEYS}


def _live_line(m: dict) -> str:
    """One line per rollout batch on stderr: rewards, the rescue, the loss, and where the time went."""
    g = lambda k: m.get(k) or 0.0  # noqa: E731  (None: no token of that kind)
    return (f"step {m['step']:>5}  reward {g('reward'):.3f}  acc {g('accuracy'):.3f}  "
            f"all-wrong {g('all_wrong_ratio_before'):.2f}->{g('all_wrong_ratio_after'):.2f}  "
            f"K {g('replaced_rows_K'):.0f}  hints kept {g('hint_tokens_kept'):.0f}  kl {g('kl'):.4f}  "
            f"ratio hint/gen {g('hint_tokens_policy_ratio'):.3f}/{g('generated_tokens_policy_ratio'):.3f}  "
            f"loss {g('loss'):+.4f}  [rollout {g('rollout_s'):.1f}s inpaint {g('inpaint_s'):.1f}s "
            f"grade {g('grading_s'):.1f}s logp {g('logprob_s'):.1f}s update {g('update_s'):.1f}s]")
