"""The evaluation job: generate ``num_samples`` completions per problem, grade them, summarise.

Writes ``generations/<task>.jsonl`` (one row per sample: id, prompt, completion, extracted answer, gold, score),
``summary.json`` and a metrics line per task; prints a rich table. A task whose generations file is complete
is not redone when the run restarts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from igpo_kit.evaluation.metrics import summarize
from igpo_kit.evaluation.settings import EvalSettings
from igpo_kit.models.base import DiffusionLM, left_pad
from igpo_kit.atomic import write_atomic
from igpo_kit.runs import Run


def _extracted(completion: str) -> str | None:
    from igpo_kit.grading.extract import answer_region, last_boxed

    return last_boxed(answer_region(completion))


def evaluate_task(model: DiffusionLM, task, *, generator: torch.Generator, batch_size: int, grade_timeout_s: float,
                  grade_workers: int, progress: bool) -> tuple[list[dict], dict]:
    """Generate and grade one task. Returns (rows, metrics)."""
    from igpo_kit.grading.pool import grade_many
    from igpo_kit.progress import Progress

    prompts = [model.chat_prompt(task.prompt.messages(ex), prefill=task.prompt.prefill) for ex in task.examples]
    jobs = [(i, s) for i in range(len(task.examples)) for s in range(task.num_samples)]
    completions: dict[tuple[int, int], str] = {}
    t0 = time.perf_counter()
    n_tokens = 0
    with Progress(f"eval {task.name}: samples generated", len(jobs), enabled=progress) as bar:
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start:start + batch_size]
            ids, mask = left_pad([prompts[i] for i, _ in chunk], model.pad_id if model.pad_id is not None else model.eos_id)
            out = task.sampler(model, ids.to(model.device), attention_mask=mask.to(model.device), generator=generator)
            for (i, s), row in zip(chunk, out.completions.tolist()):
                completions[(i, s)] = model.decode(row)
            n_tokens += out.completions.numel()
            bar.update(advance=len(chunk))
    gen_s = time.perf_counter() - t0
    texts = [completions[j] for j in jobs]
    golds = [task.examples[i].answer for i, _ in jobs]
    report = grade_many(task.grader, texts, golds, timeout_s=grade_timeout_s, workers=grade_workers, progress=progress)
    rows, correct = [], [[False] * task.num_samples for _ in task.examples]
    for (i, s), text, score in zip(jobs, texts, report.scores):
        ex = task.examples[i]
        correct[i][s] = score > 0
        rows.append({"task": task.name, "id": ex.id, "sample": s, "prompt": ex.question, "completion": text,
                     "extracted": _extracted(text), "gold": ex.answer, "score": score})
    metrics = summarize(correct, task.pass_k)
    metrics.update({"task": task.name, "samples": len(jobs), "grade_timeouts": report.timeouts,
                    "grade_errors": report.errors, "generation_s": round(gen_s, 3),
                    "tokens_per_s": round(n_tokens / max(gen_s, 1e-9), 1), "grading_s": round(report.seconds, 3)})
    return rows, metrics


def run_eval(model: DiffusionLM, tasks: list, run: Run, settings: EvalSettings = EvalSettings(), *,
             progress: bool = True) -> dict[str, Any]:
    """Evaluate ``model`` on every task with ``settings`` (seed, batch size, grading); returns ``{task: metrics}``."""
    from rich.console import Console
    from rich.table import Table

    out_dir = run.dir / "generations"
    out_dir.mkdir(exist_ok=True)
    summary_path = run.dir / "summary.json"
    summary: dict[str, Any] = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for task in tasks:
        gen_path = out_dir / f"{task.name}.jsonl"
        if task.name in summary and gen_path.exists():
            continue  # finished before a restart
        generator = torch.Generator(device=model.device).manual_seed(settings.seed)
        rows, metrics = evaluate_task(model, task, generator=generator, batch_size=settings.batch_size,
                                      grade_timeout_s=settings.grade_timeout_s, grade_workers=settings.grade_workers,
                                      progress=progress)
        write_atomic(gen_path, "".join(json.dumps(r) + "\n" for r in rows))
        summary[task.name] = metrics
        run.log(metrics)
        run.write_json("summary.json", summary)
    table = Table(title=f"evaluation ({run.dir})")
    cols = sorted({k for m in summary.values() for k in m if k.startswith(("avg@", "pass@"))})
    table.add_column("task")
    for c in cols + ["problems", "grade_timeouts"]:
        table.add_column(c, justify="right")
    for name, m in summary.items():
        table.add_row(name, *[f"{100 * m[c]:.1f}" if c in m else "-" for c in cols],
                      str(m.get("problems", "")), str(m.get("grade_timeouts", "")))
    Console(stderr=True).print(table)
    return summary
