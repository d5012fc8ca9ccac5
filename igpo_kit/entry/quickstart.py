"""The CPU quickstart's root: pre-train a tiny dLLM (cached SFT), run GRPO and IGPO from it, report both.

Steps (each resumable; re-running the same config continues where a killed run stopped):

1. SFT (:func:`igpo_kit.sft.start.pretrain`, the call the ``model.cached_sft`` component makes too): ``model``
   trained on ``sft_dataset``, cached by content under ``<runs>/<name>/_cache/sft-<key>/`` (``cache_dir``), so later
   runs with the same SFT settings (and the tiny RL recipes that start from it, ``recipes/tiny/igpo_sft.gin``) only
   load it.
2. One RL run per arm and seed (:func:`igpo_kit.entry.rl.rl`) from the SFT weights, identical settings and seed
   except the replacement policy (``arms``: GRPO = ``none``, IGPO = ``igpo``): ``<run>/arms/<arm>/seed_<s>/`` with
   ``metrics.jsonl``, checkpoints and the final model.
3. Greedy evaluation of the SFT model and of every RL model on ``eval_dataset`` (held-out problems).
4. Report (:mod:`igpo_kit.report.arms`): a rich table and ``<run>/report/`` (``report.md``, ``table.csv``,
   ``accuracy.png``, ``all_wrong_ratio.png``).
"""

from __future__ import annotations

from typing import Any


def quickstart(
    model: Any = None,
    sft_dataset: Any = None,
    dataset: Any = None,
    eval_dataset: Any = None,
    prompt: Any = None,
    sampler: Any = None,
    eval_sampler: Any = None,
    grader: Any = None,
    arms: dict | None = None,
    hint_chunker: Any = None,
    entropy_filter: Any = None,
    advantage_estimator: Any = None,
    logprob_estimator: Any = None,
    loss: Any = None,
    sft_max_length: int = 192,
    sft_batch_size: int = 32,
    sft_steps: int = 2000,
    sft_learning_rate: float = 2e-3,
    sft_min_learning_rate: float = 1e-4,
    sft_warmup_steps: int = 50,
    sft_weight_decay: float = 0.1,
    sft_checkpoint_every: int = 200,
    sft_seed: int = 0,
    group_size: int = 8,
    prompts_per_step: int = 4,
    max_steps: int = 40,
    inner_iters: int = 1,
    learning_rate: float = 1e-4,
    warmup_steps: int = 0,
    weight_decay: float = 0.0,
    max_grad_norm: float = 1.0,
    hint_ratio_low: float = 0.2,
    hint_ratio_high: float = 0.6,
    checkpoint_every: int = 10,
    seed: int = 0,
    num_seeds: int = 1,
    eval_batch_size: int = 64,
    grade_workers: int = 1,
    num_threads: int = 2,
    smooth_window: int = 10,
    cache_dir: str | None = None,
    run: Any = None,
) -> dict:
    """SFT once (cached), then each arm (GRPO, IGPO) with the same rollout budget and seed, then the report.

    Args:
        model: the fresh dLLM to pre-train (``@model.tiny()``).
        sft_dataset: SFT problems with traces; dataset: RL problems (traces are IGPO's hints); eval_dataset:
            held-out problems for the greedy evaluation (None skips it).
        prompt: prompt template of SFT, RL and evaluation (its prefill must start the SFT targets).
        sampler: rollout sampler (temperature 1.2); eval_sampler: greedy sampler for the evaluation.
        grader: correctness grader.
        arms: ``{name: replacement policy}``, in run order (``{"grpo": none(), "igpo": igpo()}``).
        hint_chunker, entropy_filter, advantage_estimator, logprob_estimator, loss: RL components shared by the
            arms (defaults: those of ``entry.rl``).
        sft_*: SFT settings (part of the cache key): sequence budget, batch size, optimizer steps, peak / final lr
            of the warmup-stable-decay schedule, warmup steps, weight decay, checkpoint period, seed.
        group_size (G), prompts_per_step, max_steps, inner_iters (mu), learning_rate, warmup_steps,
            weight_decay, max_grad_norm, hint_ratio_low/high (eta ~ U[low, high]), checkpoint_every: RL settings,
            the same for every arm.
        seed, num_seeds: the arms run with seeds ``seed .. seed + num_seeds - 1`` (one RL run per arm and seed).
        eval_batch_size: rows per sampler call in the evaluation. grade_workers: grading processes.
        num_threads: torch intra-op threads (restored afterwards).
        smooth_window: the plots show trailing means over this many steps.
        cache_dir: SFT cache root (default: ``_cache`` next to this run directory).
        run: the run record (passed by the runner).
    Returns:
        ``{"sft": {...}, "arms": {arm: {seed: final metrics}}, "eval": {...}, "report": [files], "seconds": ...}``.
    """
    import functools
    import time
    from pathlib import Path

    import torch
    from rich.console import Console

    from igpo_kit.errors import ConfigError

    missing = [n for n, v in dict(model=model, sft_dataset=sft_dataset, dataset=dataset, sampler=sampler,
                                  grader=grader, arms=arms).items() if not v]
    if missing:
        raise ConfigError(f"entry.quickstart needs {', '.join(missing)}")
    if num_seeds < 1:
        raise ConfigError(f"entry.quickstart.num_seeds must be >= 1, got {num_seeds}")
    from igpo_kit.components import prompt as prompt_k

    prompt = prompt or prompt_k.llada_reasoning()
    from igpo_kit.sampling.generate import check_sampler_model

    for sampler_ in (sampler, eval_sampler):
        check_sampler_model(sampler_, model)
    console = Console(stderr=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    t_start = time.perf_counter()
    try:
        # 1. SFT (cached)
        from igpo_kit.sft.start import pretrain

        root = Path(cache_dir) if cache_dir else run.dir.parent / "_cache"
        console.rule("[bold]1/4 SFT[/bold]: pre-train the tiny dLLM (cached)")

        def sft_progress(rec: dict) -> None:
            if rec["step"] % 100 == 0 or rec["step"] == sft_steps:
                console.print(f"sft step {rec['step']:>5}/{sft_steps}  loss {rec['loss']:.3f}  lr {rec['lr']:.2e}  "
                              f"[{time.perf_counter() - t_start:.0f}s]", highlight=False)

        # the same call as the model.cached_sft component (igpo_kit.sft.start): the same settings, the same cache key
        sft = pretrain(model, sft_dataset, prompt, root, log=sft_progress,
                       notify=lambda m: console.print(m, highlight=False, soft_wrap=True), max_length=sft_max_length,
                       batch_size=sft_batch_size, steps=sft_steps, lr=sft_learning_rate, min_lr=sft_min_learning_rate,
                       warmup_steps=sft_warmup_steps, weight_decay=sft_weight_decay,
                       checkpoint_every=sft_checkpoint_every, seed=sft_seed)
        model.network.eval()
        console.print(f"SFT {'reused' if sft.reused else 'trained'} ({sft.steps_run} steps run, {sft.seconds:.0f}s): "
                      f"{sft.model_dir}", highlight=False, soft_wrap=True)
        run.update_info(sft={"key": sft.key, "model_dir": str(sft.model_dir), "reused": sft.reused})

        evals: dict[str, Any] = {}
        eval_s = 0.0
        if eval_dataset is not None:
            t0 = time.perf_counter()
            evals["sft"] = _evaluate(model, list(eval_dataset), prompt, eval_sampler or sampler, grader,
                                     run.dir / "eval" / "sft", seed, eval_batch_size, grade_workers)
            eval_s += time.perf_counter() - t0
            console.print(f"SFT model, greedy test accuracy: {evals['sft']['pass@1']:.3f}", highlight=False)

        # 2. RL arms, 3. their evaluation
        from igpo_kit.entry.rl import rl

        shared = dict(  # everything but the replacement policy is the same for every arm
            dataset=dataset, prompt=prompt, sampler=sampler, grader=grader, hint_chunker=hint_chunker,
            entropy_filter=entropy_filter, advantage_estimator=advantage_estimator, logprob_estimator=logprob_estimator,
            loss=loss, group_size=group_size, prompts_per_step=prompts_per_step, max_steps=max_steps,
            inner_iters=inner_iters, learning_rate=learning_rate, warmup_steps=warmup_steps, weight_decay=weight_decay,
            max_grad_norm=max_grad_norm, hint_ratio_low=hint_ratio_low, hint_ratio_high=hint_ratio_high,
            checkpoint_every=checkpoint_every, keep_checkpoints=1, grade_workers=grade_workers)
        records, results = [], {}
        for s in range(seed, seed + num_seeds):
            for name, policy in arms.items():
                console.rule(f"[bold]2/4 RL[/bold]: {name}, seed {s}")
                arm_dir = run.dir / "arms" / name / f"seed_{s}"
                arm_model = _copy(model)
                result = _arm(arm_dir, name, s, policy,
                              functools.partial(rl, model=arm_model, replacement_policy=policy, seed=s, **shared))
                results.setdefault(name, {})[s] = result
                rec = {"method": name, "seed": s, "run_dir": str(arm_dir), "seconds": result.get("seconds"),
                       "metrics": _read_metrics(arm_dir)}
                if eval_dataset is not None:
                    t0 = time.perf_counter()
                    if not (arm_dir / "eval" / "summary.json").is_file():
                        _load_final(arm_model, arm_dir / "model")
                    rec["eval"] = _evaluate(arm_model, list(eval_dataset), prompt, eval_sampler or sampler, grader,
                                            arm_dir / "eval", seed, eval_batch_size, grade_workers)["pass@1"]
                    evals.setdefault(name, {})[s] = rec["eval"]
                    eval_s += time.perf_counter() - t0
                records.append(rec)

        # 4. report
        console.rule("[bold]4/4 report[/bold]")
        files, table = _report(records, run.dir / "report", smooth_window, evals.get("sft"),
                               baseline=next(iter(arms)), sft=sft)
        from igpo_kit.report.arms import to_rich_by_metric

        console.print(to_rich_by_metric(table))
        for f in files:
            console.print(f"wrote {f}", highlight=False, soft_wrap=True)
        total = time.perf_counter() - t_start
        console.print(f"quickstart: {total:.0f}s (SFT {sft.seconds:.0f}s{' reused' if sft.reused else ''}, "
                      + ", ".join(f"{r['method']}/seed {r['seed']} {r['seconds']:.0f}s" for r in records)
                      + f", eval {eval_s:.0f}s)", highlight=False)
        return {
            "sft": {"key": sft.key, "model_dir": str(sft.model_dir), "reused": sft.reused,
                    "steps_run": sft.steps_run, "seconds": round(sft.seconds, 3)},
            "arms": results,
            "eval": evals,
            "report": [str(f) for f in files],
            "seconds": {"total": round(total, 3), "sft": round(sft.seconds, 3), "eval": round(eval_s, 3),
                        **{f"{r['method']}/seed_{r['seed']}": r["seconds"] for r in records}},
        }
    finally:
        torch.set_num_threads(threads)


def _copy(model):
    """An independent copy of ``model`` (same tokenizer and ids, deep-copied network)."""
    import copy

    from igpo_kit.models.base import DiffusionLM

    return DiffusionLM(**{**model.__dict__, "network": copy.deepcopy(model.network)})


def _load_final(model, path) -> None:
    from igpo_kit.sft.trainer import load_weights

    load_weights(model.network, path)
    model.network.eval()


def _read_metrics(arm_dir):
    from igpo_kit.report.load import read_metrics

    return read_metrics(arm_dir / "metrics.jsonl")


def _arm(arm_dir, name: str, seed: int, policy, train) -> dict:
    """Run ``train(run=...)`` for one arm in ``arm_dir`` (resuming; skipped when finished); its result + ``seconds``."""
    import json
    import time

    from igpo_kit.atomic import write_atomic
    from igpo_kit.runs import Run

    arm_run = Run(arm_dir)
    if (arm_dir / "DONE").exists() and (arm_dir / "result.json").exists():
        return json.loads((arm_dir / "result.json").read_text())
    arm_run.update_info(job="rl", arm=name, seed=seed, replacement_policy=getattr(policy, "name", repr(policy)),
                        status="running")
    t0 = time.perf_counter()
    result = train(run=arm_run)
    result = {**result, "seconds": round(time.perf_counter() - t0, 3)}
    arm_run.write_json("result.json", result)
    arm_run.update_info(status="done")
    write_atomic(arm_dir / "DONE", "")
    return result


def _evaluate(model, examples, prompt, sampler, grader, out_dir, seed: int, batch_size: int,
              grade_workers: int) -> dict:
    """Greedy pass@1 on ``examples``; cached in ``out_dir/summary.json`` (generations in ``generations.jsonl``)."""
    import json

    import torch

    from igpo_kit.evaluation.job import evaluate_task
    from igpo_kit.evaluation.tasks import EvalTask
    from igpo_kit.runs import Run

    summary = out_dir / "summary.json"
    if summary.is_file():
        return json.loads(summary.read_text())
    out = Run(out_dir)
    task = EvalTask("arithmetic_test", examples, sampler, grader, prompt)
    rows, metrics = evaluate_task(model, task, generator=torch.Generator(device=model.device).manual_seed(seed),
                                  batch_size=batch_size, grade_timeout_s=5.0, grade_workers=grade_workers,
                                  progress=False)
    (out_dir / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out.write_json("summary.json", metrics)
    return metrics


def _report(records, out_dir, window: int, sft_eval: dict | None, baseline: str, sft) -> tuple[list, Any]:
    from igpo_kit.report.arms import arm_plots, arm_table
    from igpo_kit.report.tables import to_csv, to_markdown

    out_dir.mkdir(parents=True, exist_ok=True)
    start = {"method": "sft (start)", "eval": sft_eval["pass@1"]} if sft_eval else None
    table = arm_table(records, baseline=baseline, start=start)
    pngs = arm_plots(records, out_dir, window=window, title="GRPO vs IGPO, tiny dLLM, synthetic arithmetic")
    (out_dir / "table.csv").write_text(to_csv(table))
    md = ["# Quickstart: GRPO vs IGPO from the same SFT model", "",
          f"SFT model: `{sft.model_dir}`", "", to_markdown(table)]
    md += [f"![{p.stem}]({p.name})" + "\n" for p in pngs]
    (out_dir / "report.md").write_text("\n".join(md))
    return [out_dir / "report.md", out_dir / "table.csv", *pngs], table
