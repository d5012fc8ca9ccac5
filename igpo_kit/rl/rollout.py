"""The sampling stage of IGPO (Alg. 1, lines 3-12): rollouts, grading, the all-wrong trigger, inpainting
rescue and replacement. Everything here is per rollout batch of ``N`` prompts x ``G`` (group_size) rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from igpo_kit.models.base import DiffusionLM, left_pad


@dataclass
class RolloutBatch:
    """Final rollouts of one step, rows grouped as ``[N * G]`` (group ``n`` = rows ``n*G .. n*G+G-1``).

    Attributes:
        sequences: ``[N*G, P+L]`` prompt + completion ids (left-padded prompts).
        attention_mask: ``[N*G, P+L]`` 1 on real tokens.
        hint_mask: ``[N*G, L]`` True where an injected ground-truth hint token sits.
        correctness: ``[N, G]`` correctness rewards; fmt: ``[N, G]`` format rewards.
        texts: decoded completions.
        stats: scalar metrics of the stage: ``initial_correctness``, ``all_wrong_ratio_before`` / ``_after``,
            ``triggered_groups``, ``rescued_fraction`` (triggered groups with K > 0), ``inpainted_correctness``
            (mean over triggered groups of the fraction of correct extra rollouts), ``replaced_rows_K`` (total K),
            ``mean_hint_ratio`` (mean eta drawn), ``inpaint_hint_tokens`` (mean hint tokens per extra rollout),
            ``rollouts_sampled`` (sampled this step: ``N*G`` plus ``G`` per triggered group),
            ``final_correctness``, ``grade_timeouts``, ``inpaint_rows_sampled`` (inpainting rows this process sampled:
            its own, or its share of every process's under balancing) and the timings ``rollout_s``, ``inpaint_s``, ``grading_s``.
    """

    sequences: torch.Tensor
    attention_mask: torch.Tensor
    prompt_length: int
    hint_mask: torch.Tensor
    correctness: torch.Tensor
    fmt: torch.Tensor
    texts: list[str]
    stats: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RolloutSetup:
    """What the sampling stage is built from: its components and settings (fixed for a run).

    Attributes:
        prompt, sampler, grader, hint_chunker, replacement_policy: the registered components it calls.
        group_size: ``G``, rollouts per prompt.
        hint_ratio_low, hint_ratio_high: ``eta ~ U[eta_low, eta_high]``, the fraction of trace chunks revealed.
        format_grader: optional format reward grader; trace_corruption: optional App. J corruption of the trace.
        grade_timeout_s, grade_workers: grading time limit per answer and worker processes.
    """

    prompt: Any
    sampler: Any
    grader: Any
    hint_chunker: Any
    replacement_policy: Any
    group_size: int
    hint_ratio_low: float
    hint_ratio_high: float
    format_grader: Any = None
    trace_corruption: Any = None
    grade_timeout_s: float = 5.0
    grade_workers: int = 2


def _grade(grader, texts: list[str], golds: list[str], timeout_s: float, workers: int,
           pool=None) -> tuple[torch.Tensor, int]:
    from igpo_kit.grading.pool import grade_many

    report = grade_many(grader, texts, golds, timeout_s=timeout_s, workers=workers, pool=pool)
    return torch.tensor(report.scores, dtype=torch.float32), report.timeouts


def collect(
    model: DiffusionLM,
    examples: list,
    setup: RolloutSetup,
    generators: dict[str, torch.Generator],
    trace_cache: dict | None = None,
    grade_pool=None,
    exchange=None,
) -> RolloutBatch:
    """Roll out ``G`` completions for each of the ``N`` examples; rescue all-wrong groups by inpainting.

    One batched sampler call makes all ``N*G`` rollouts; one more batched call makes the ``G`` inpainted (or, for
    the ``resample`` policy, hint-free) rollouts of every triggered group (``setup``: :class:`RolloutSetup`). A
    ``trace_corruption`` (App. J) corrupts the ground-truth trace before it is chunked into hints. Rows are
    replaced per group as the replacement policy selects (``K = min(#correct, floor(lambda*G))`` for IGPO).
    ``grade_pool``: a :class:`~igpo_kit.grading.pool.GradingPool` reused across steps (else each grading call forks
    its own). ``exchange``: an :class:`~igpo_kit.rl.balance.Exchange` to spread the inpainting rows of every
    process's triggered groups over all processes (:mod:`igpo_kit.rl.balance`; a collective call: every process calls
    ``collect`` with one); None: this process inpaints its own groups in one batched call.
    """
    from igpo_kit.hints.chunking import sample_hint_ratios
    from igpo_kit.hints.answer_span import tokenize_trace
    from igpo_kit.rl.trigger import all_wrong

    prompt, sampler, grader, format_grader = setup.prompt, setup.sampler, setup.grader, setup.format_grader
    hint_chunker, replacement_policy = setup.hint_chunker, setup.replacement_policy
    trace_corruption = setup.trace_corruption
    grade_timeout_s, grade_workers = setup.grade_timeout_s, setup.grade_workers
    G, N = setup.group_size, len(examples)
    t = {"rollout_s": 0.0, "inpaint_s": 0.0, "grading_s": 0.0}
    pad = model.pad_id if model.pad_id is not None else model.eos_id
    prompt_ids = [model.chat_prompt(prompt.messages(ex), prefill=prompt.prefill) for ex in examples]
    ids, pmask = left_pad([p for p in prompt_ids for _ in range(G)], pad)
    ids, pmask = ids.to(model.device), pmask.to(model.device)
    golds = [ex.answer for ex in examples for _ in range(G)]

    t0 = time.perf_counter()
    gen = sampler(model, ids, attention_mask=pmask, generator=generators["rollout"])
    t["rollout_s"] = time.perf_counter() - t0
    sequences = gen.sequences
    L = gen.completions.shape[1]
    hint_mask = torch.zeros(N * G, L, dtype=torch.bool, device=sequences.device)
    texts = [model.decode(r) for r in gen.completions.tolist()]

    t0 = time.perf_counter()
    correct, timeouts = _grade(grader, texts, golds, grade_timeout_s, grade_workers, grade_pool)
    fmt = (_grade(format_grader, texts, golds, grade_timeout_s, grade_workers, grade_pool)[0] if format_grader is not None
           else torch.zeros(N * G))
    t["grading_s"] += time.perf_counter() - t0
    correct, fmt = correct.view(N, G), fmt.view(N, G)
    wrong_before = all_wrong(correct)
    stats: dict[str, float] = {
        "initial_correctness": correct.mean().item(),
        "all_wrong_ratio_before": wrong_before.float().mean().item(),
        "grade_timeouts": float(timeouts),
    }
    triggered = [n for n in range(N) if wrong_before[n]] if replacement_policy.triggers else []
    K_total, etas, inpaint_correct_total, rescued, inpaint_hints = 0, [], [], 0, 0.0
    rows_sampled = 0
    if triggered or (exchange is not None and replacement_policy.triggers):  # help the others even with none ours
        rows = [n * G + j for n in triggered for j in range(G)]
        hint_ids = torch.zeros(len(rows), L, dtype=torch.long)
        hmask = torch.zeros(len(rows), L, dtype=torch.bool)
        if replacement_policy.use_hints:
            for k, n in enumerate(triggered):
                ex = examples[n]
                if not ex.trace:
                    continue
                if trace_corruption is not None:  # App. J: noisy hints, fresh noise at every rescue
                    trace = tokenize_trace(model.tokenizer, trace_corruption(ex.trace, generators["hints"]),
                                           max_tokens=L)
                elif trace_cache is not None and (ex.id, L) in trace_cache:
                    trace = trace_cache[(ex.id, L)]
                else:
                    trace = tokenize_trace(model.tokenizer, ex.trace, max_tokens=L)
                    if trace_cache is not None:
                        trace_cache[(ex.id, L)] = trace
                ratios = sample_hint_ratios(G, setup.hint_ratio_low, setup.hint_ratio_high, generators["hints"])
                plans = hint_chunker.plan_group(trace, L, ratios, generators["hints"])  # Alg. 1 lines 5-7
                for j, plan in enumerate(plans):
                    hint_ids[k * G + j], hmask[k * G + j] = plan.hint_ids, plan.hint_mask
                etas += [float(r) for r in ratios]
        t0 = time.perf_counter()
        if exchange is None:
            sub = sampler(model, ids[rows], attention_mask=pmask[rows], hint_ids=hint_ids.to(ids.device),
                          hint_mask=hmask.to(ids.device), generator=generators["rollout"])
            sub_sequences, sub_hint_mask, sub_completions = sub.sequences, sub.hint_mask, sub.completions
            rows_sampled = len(rows)
        else:
            sub_sequences, sub_hint_mask, sub_completions, rows_sampled = _inpaint_balanced(
                model, sampler, ids, pmask, rows, hint_ids, hmask, generators["rollout"], exchange)
        t["inpaint_s"] = time.perf_counter() - t0
    if triggered:
        inpaint_hints = sub_hint_mask.sum(dim=1).float().mean().item()
        sub_texts = [model.decode(r) for r in sub_completions.tolist()]
        t0 = time.perf_counter()
        sub_correct, _ = _grade(grader, sub_texts, [golds[r] for r in rows], grade_timeout_s, grade_workers, grade_pool)
        sub_fmt = (_grade(format_grader, sub_texts, [golds[r] for r in rows], grade_timeout_s, grade_workers, grade_pool)[0]
                   if format_grader is not None else torch.zeros(len(rows)))
        t["grading_s"] += time.perf_counter() - t0
        for k, n in enumerate(triggered):
            cand = sub_correct[k * G:(k + 1) * G] > 0
            inpaint_correct_total.append(cand.float().mean().item())
            pairs = replacement_policy.select(cand, G, generators["replace"])
            for dst, src in pairs:
                row, srow = n * G + dst, k * G + src
                sequences[row] = sub_sequences[srow]
                hint_mask[row] = sub_hint_mask[srow]
                texts[row] = sub_texts[srow]
                correct[n, dst], fmt[n, dst] = sub_correct[k * G + src], sub_fmt[k * G + src]
            K_total += len(pairs)
            rescued += int(len(pairs) > 0)
    wrong_after = all_wrong(correct)
    stats.update({
        "all_wrong_ratio_after": wrong_after.float().mean().item(),
        "triggered_groups": float(len(triggered)),
        "rescued_fraction": rescued / len(triggered) if triggered else 0.0,
        "inpainted_correctness": sum(inpaint_correct_total) / len(inpaint_correct_total) if inpaint_correct_total else 0.0,
        "replaced_rows_K": float(K_total),
        "mean_hint_ratio": sum(etas) / len(etas) if etas else 0.0,
        "inpaint_hint_tokens": inpaint_hints,
        "rollouts_sampled": float(N * G + (G * len(triggered) if triggered else 0)),
        "final_correctness": correct.mean().item(),
        "inpaint_rows_sampled": float(rows_sampled),
        **t,
    })
    full_mask = torch.cat([pmask, torch.ones_like(sequences[:, pmask.shape[1]:])], dim=1)
    return RolloutBatch(sequences, full_mask, pmask.shape[1], hint_mask, correct, fmt, texts, stats)


def _inpaint_balanced(model, sampler, ids, pmask, rows, hint_ids, hmask, generator, exchange):
    """The inpainting rows ``rows`` of this process sampled through :func:`igpo_kit.rl.balance.inpaint_balanced`:
    ``(sequences [R, P+L], hint_mask [R, L], completions [R, L], rows sampled here)`` on the model's device."""
    from igpo_kit.rl.balance import InpaintRow, draw_row_seeds, inpaint_balanced

    seeds = draw_row_seeds(len(rows), generator)  # one per row, from this (owning) process's rollout generator
    mine = [InpaintRow(exchange.rank, ids[r].cpu(), pmask[r].cpu(), hint_ids[k], hmask[k], seeds[k])
            for k, r in enumerate(rows)]
    results, n_sampled = inpaint_balanced(model, sampler, mine, exchange)
    L = hint_ids.shape[1]
    completions = (torch.stack([r.completion for r in results]) if results
                   else torch.zeros(0, L, dtype=torch.long)).to(ids.device)
    hint_mask = (torch.stack([r.hint_mask for r in results]) if results
                 else torch.zeros(0, L, dtype=torch.bool)).to(ids.device)
    return torch.cat([ids[rows], completions], dim=1), hint_mask, completions, n_sampled
