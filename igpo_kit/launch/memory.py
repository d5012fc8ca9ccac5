"""``run --dry-run``'s memory lines: the estimated peak memory per GPU of an RL or SFT job
(:mod:`igpo_kit.config.memory`) against the resources profile's ``gpu_memory_gb``."""

from __future__ import annotations

from typing import Any, Sequence

_PARTS = (("weights_gb", "weights"), ("reference_gb", "reference copy"), ("gradients_gb", "gradients"),
          ("optimizer_gb", "optimizer states"), ("activations_gb", "activations"),
          ("update_logits_gb", "update logits"), ("logprob_pass_logits_gb", "old/ref logits"),
          ("rollout_logits_gb", "rollout logits"), ("overhead_gb", "CUDA/NCCL overhead"))


def _gb(x: float) -> str:
    return f"{x:.2f} GB" if x >= 0.1 else f"{x * 1e3:.2f} MB"


def memory_lines(plan: Any, cluster: str | None = None, resources: str | None = None,
                 overrides: Sequence[str] = (), executor: str = "slurm") -> list[tuple[str, str]]:
    """``[(style, line), ...]`` to print (style ``""``, ``"yellow"`` for a warning); empty for other jobs."""
    from igpo_kit.config.memory import estimate_job
    from igpo_kit.launch.submit import launch_profile

    job = getattr(plan.config, "job", None)
    if job not in ("rl", "sft"):
        return []
    profile = launch_profile(job, getattr(plan.config, "recipe", None), executor, cluster, resources, overrides)
    world = max(1, profile.num_tasks)
    est = estimate_job(job, world=world)
    if est is None or est["parts"] is None:
        return [("yellow", f"memory estimate: {est['source'] if est else 'not available for this job'}")]
    parts, w = est["parts"], est["workload"]
    ckpt = "with" if w.gradient_checkpointing else "without"
    out = [("", f"estimated peak memory per GPU: {_gb(parts['peak_gb'])} ({job}, {world} process(es), ZeRO "
                f"{w.zero_stage}, {w.rows} rows x {w.seq_len} tokens per forward, {ckpt} gradient checkpointing; "
                f"model: {est['source']})")]
    out.append(("", "  " + ", ".join(f"{label} {_gb(parts[k])}" for k, label in _PARTS if parts[k] > 0)))
    cap = profile.gpu_memory_gb
    where = f"{profile.cluster}/{profile.resources}"
    if cap is None:
        out.append(("yellow", f"  cannot compare: profile {where} has no gpu_memory_gb (set it in the cluster "
                              f"profile, e.g. gpu_memory_gb = 80 for H100)"))
    elif parts["peak_gb"] > cap:
        out.append(("yellow", f"  warning: the estimate exceeds the {cap:g} GB of a GPU in {where}: lower "
                              f"micro_batch_size, turn on gradient_checkpointing, use LoRA or ZeRO"))
    else:
        out.append(("", f"  fits the {cap:g} GB of a GPU in {where} ({parts['peak_gb'] / cap:.0%})"))
    return out
