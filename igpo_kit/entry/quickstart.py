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
    sft_num_threads: int | None = None,
    arm_processes: int | None = None,
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
        num_threads: torch intra-op threads of each RL run and evaluation (restored afterwards).
        sft_num_threads: torch threads of the SFT (one process); None: the cores no other process keeps busy
            (:func:`igpo_kit.cores.idle_cores`, at least 1).
        arm_processes: RL runs (arm x seed) trained at once, each in a process of its own with ``num_threads``
            threads, then evaluated there; 1: one after the other in this process; None: as many as the cores allow
            (usable cores // ``num_threads``, at most the number of runs). Every run's result is the same either way.
        smooth_window: the plots show trailing means over this many steps.
        cache_dir: SFT cache root (default: ``_cache`` next to this run directory).
        run: the run record (passed by the runner).
    Returns:
        ``{"sft": {...}, "arms": {arm: {seed: final metrics}}, "eval": {...}, "report": [files], "seconds": ...}``.
    """
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
    cells = [(name, s, policy) for s in range(seed, seed + num_seeds) for name, policy in arms.items()]
    workers = arm_worker_count(arm_processes, len(cells), num_threads)
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
        from igpo_kit.cores import idle_cores

        torch.set_num_threads(sft_num_threads or idle_cores())
        sft = pretrain(model, sft_dataset, prompt, root, log=sft_progress,
                       notify=lambda m: console.print(m, highlight=False, soft_wrap=True), max_length=sft_max_length,
                       batch_size=sft_batch_size, steps=sft_steps, lr=sft_learning_rate, min_lr=sft_min_learning_rate,
                       warmup_steps=sft_warmup_steps, weight_decay=sft_weight_decay,
                       checkpoint_every=sft_checkpoint_every, seed=sft_seed)
        torch.set_num_threads(num_threads)
        model.network.eval()
        console.print(f"SFT {'reused' if sft.reused else 'trained'} ({sft.steps_run} steps run, {sft.seconds:.0f}s): "
                      f"{sft.model_dir}", highlight=False, soft_wrap=True)
        run.update_info(sft={"key": sft.key, "model_dir": str(sft.model_dir), "reused": sft.reused})

        evals: dict[str, Any] = {}
        eval_s = 0.0

        def evaluate_sft() -> None:
            nonlocal eval_s
            if eval_dataset is not None:
                t0 = time.perf_counter()
                evals["sft"] = _evaluate(model, list(eval_dataset), prompt, eval_sampler or sampler, grader,
                                         run.dir / "eval" / "sft", seed, eval_batch_size, grade_workers)
                eval_s += time.perf_counter() - t0
                console.print(f"SFT model, greedy test accuracy: {evals['sft']['pass@1']:.3f}", highlight=False)

        # 2. RL arms, 3. their evaluation
        shared = dict(  # everything but the replacement policy is the same for every arm
            dataset=dataset, prompt=prompt, sampler=sampler, grader=grader, hint_chunker=hint_chunker,
            entropy_filter=entropy_filter, advantage_estimator=advantage_estimator, logprob_estimator=logprob_estimator,
            loss=loss, group_size=group_size, prompts_per_step=prompts_per_step, max_steps=max_steps,
            inner_iters=inner_iters, learning_rate=learning_rate, warmup_steps=warmup_steps, weight_decay=weight_decay,
            max_grad_norm=max_grad_norm, hint_ratio_low=hint_ratio_low, hint_ratio_high=hint_ratio_high,
            checkpoint_every=checkpoint_every, keep_checkpoints=1, grade_workers=grade_workers)
        evaluation = dict(eval_dataset=eval_dataset, prompt=prompt, eval_sampler=eval_sampler or sampler,
                          grader=grader, eval_seed=seed, eval_batch_size=eval_batch_size, grade_workers=grade_workers)
        if workers > 1:
            console.rule(f"[bold]2/4 RL[/bold]: {len(cells)} runs, {workers} at a time (one process each; "
                         f"logs in arms/<arm>/seed_<s>/log.txt)")
            # the SFT model's evaluation runs here while the RL runs start (off their critical path)
            done = _run_parallel(cells, workers, run.dir, model, shared, evaluation, num_threads, console, t_start,
                                 meanwhile=evaluate_sft)
        else:
            evaluate_sft()
            done = []
            for name, s, policy in cells:
                console.rule(f"[bold]2/4 RL[/bold]: {name}, seed {s}")
                done.append(_cell(run.dir / "arms" / name / f"seed_{s}", name, s, policy, model, shared, evaluation))
        records, results = [], {}
        for rec, result in done:
            results.setdefault(rec["method"], {})[rec["seed"]] = result
            if "eval" in rec:
                evals.setdefault(rec["method"], {})[rec["seed"]] = rec["eval"]
                eval_s += rec.pop("eval_seconds")
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


def arm_worker_count(arm_processes: int | None, runs: int, num_threads: int) -> int:
    """Processes that train the RL runs at once: ``arm_processes`` (None: usable cores // ``num_threads``), at most
    ``runs``, at least 1."""
    from igpo_kit.errors import ConfigError

    if arm_processes is None:
        from igpo_kit.cores import usable_cores

        arm_processes = max(1, usable_cores() // max(1, num_threads))
    elif arm_processes < 1:
        raise ConfigError(f"entry.quickstart.arm_processes must be >= 1 or None, got {arm_processes}")
    return max(1, min(arm_processes, runs))


def _cell(arm_dir, name: str, seed: int, policy, model, shared: dict, evaluation: dict) -> tuple[dict, dict]:
    """One RL run (arm ``name``, ``seed``) from ``model``'s weights, then its greedy evaluation.

    Returns:
        ``(record, result)``: the report's record (``method``, ``seed``, ``run_dir``, ``seconds``, ``metrics`` and,
        with an evaluation set, ``eval`` and ``eval_seconds``) and the RL job's result.
    """
    import functools
    import time

    from igpo_kit.entry.rl import rl

    arm_model = _copy(model)
    result = _arm(arm_dir, name, seed, policy,
                  functools.partial(rl, model=arm_model, replacement_policy=policy, seed=seed, **shared))
    rec = {"method": name, "seed": seed, "run_dir": str(arm_dir), "seconds": result.get("seconds"),
           "metrics": _read_metrics(arm_dir)}
    ev = evaluation
    if ev["eval_dataset"] is not None:
        t0 = time.perf_counter()
        if not (arm_dir / "eval" / "summary.json").is_file():
            _load_final(arm_model, arm_dir / "model")
        rec["eval"] = _evaluate(arm_model, list(ev["eval_dataset"]), ev["prompt"], ev["eval_sampler"], ev["grader"],
                                arm_dir / "eval", ev["eval_seed"], ev["eval_batch_size"], ev["grade_workers"])["pass@1"]
        rec["eval_seconds"] = time.perf_counter() - t0
    return rec, result


def _cell_process(arm_dir, name: str, seed: int, policy, model, shared: dict, evaluation: dict,
                  num_threads: int) -> tuple[dict, dict]:
    """:func:`_cell` in a worker process: ``num_threads`` torch threads, its output in ``arm_dir/log.txt``."""
    import os

    import torch

    from igpo_kit.progress import quiet_library_bars

    arm_dir.mkdir(parents=True, exist_ok=True)
    log = open(arm_dir / "log.txt", "a", buffering=1)  # noqa: SIM115 (the process's stdout/stderr until it exits)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    quiet_library_bars()
    torch.set_num_threads(num_threads)
    return _cell(arm_dir, name, seed, policy, model, shared, evaluation)


def _exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """Worker initializer: a daemon thread ends this process once ``parent`` is gone (killed: ``kill``, OOM), so no
    run goes on training unseen; a killed run resumes from its last checkpoint when the quickstart runs again."""
    import os
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _steps_done(arm_dir) -> int:
    path = arm_dir / "metrics.jsonl"
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


def _run_parallel(cells, workers: int, run_dir, model, shared: dict, evaluation: dict, num_threads: int, console,
                  t_start: float, meanwhile=None) -> list[tuple[dict, dict]]:
    """:func:`_cell` for every ``(name, seed, policy)`` of ``cells``, ``workers`` processes at a time, in order.

    The processes are spawned (a fresh interpreter: forking a process whose torch thread pool has run can hang) and
    end when this process does (:func:`_exit_with_parent`). ``meanwhile()`` runs in this process once they are
    submitted. A line every 15 s gives each started run's step; a failed run stops the others and raises its error.
    """
    import multiprocessing
    import os
    import time
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    max_steps = shared["max_steps"]
    out: list = [None] * len(cells)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_with_parent, initargs=(os.getpid(),))
    try:
        futures = {}
        for i, (name, s, policy) in enumerate(cells):
            arm_dir = run_dir / "arms" / name / f"seed_{s}"
            future = pool.submit(_cell_process, arm_dir, name, s, policy, model, shared, evaluation, num_threads)
            futures[future] = (i, name, s, arm_dir)
        if meanwhile is not None:
            meanwhile()
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=15, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=lambda f: futures[f][0]):
                i, name, s, arm_dir = futures[future]
                try:
                    out[i] = future.result()
                except BaseException:
                    console.print(f"{name}, seed {s} failed; its log: {arm_dir / 'log.txt'}", highlight=False,
                                  soft_wrap=True)
                    raise
                rec = out[i][0]
                console.print(f"{name}, seed {s}: done in {rec['seconds']:.0f}s"
                              + (f", greedy test accuracy {rec['eval']:.3f}" if "eval" in rec else ""), highlight=False)
            started = [futures[f] for f in sorted(pending, key=lambda f: futures[f][0])
                       if (futures[f][3] / "metrics.jsonl").exists()]
            if started:
                console.print("RL " + ", ".join(f"{name}/seed {s} step {_steps_done(d)}/{max_steps}"
                                                for _, name, s, d in started)
                              + f"  [{time.perf_counter() - t_start:.0f}s]", highlight=False)
    except BaseException:
        for process in list(getattr(pool, "_processes", {}).values()):  # do not leave runs training without us
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return out


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
