"""Checks of a parsed config that run before anything is written: value ranges, relations, and the data.

:func:`value_problems` (cheap, part of :func:`igpo_kit.config.validate`): ranges of bound values by parameter
name (the same name means the same thing in every component: ``hint_ratio_*`` is eta in [0, 1], ``group_size`` is G
>= 2, every ``*timeout*`` is > 0, ...) and relations between the parameters of one configurable (eta_low <=
eta_high, min_chunk_size <= max_chunk_size, min_lr <= lr).

:func:`data_problems` builds the datasets that are cheap to build here (synthetic ones and local files that
exist; a Hub id, or a file an earlier stage will write, is left to the job) and checks that each is non-empty, that
an RL dataset holds at least one step's worth (``prompts_per_step``), and, where the model's tokenizer is
character-level (``model.tiny``: a question of N characters is at least N tokens), that the longest question fits
the model's positions. Every problem is one line.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
from pathlib import Path
from typing import Any

import gin

UNIT = ("in [0, 1]", lambda v: 0 <= v <= 1)
POSITIVE = ("> 0", lambda v: v > 0)
NON_NEGATIVE = (">= 0", lambda v: v >= 0)
AT_LEAST_1 = (">= 1", lambda v: v >= 1)
AT_LEAST_2 = (">= 2 (a group needs two rollouts for a non-zero advantage)", lambda v: v >= 2)

#: parameter name -> (what it must be, test); applies to that name in every configurable.
RANGES: dict[str, tuple[str, Any]] = {
    **{n: UNIT for n in ("hint_ratio", "hint_ratio_low", "hint_ratio_high", "replace_fraction", "entropy_top_fraction",
                         "decay_fraction", "lora_dropout")},
    **{n: POSITIVE for n in ("timeout_s", "grade_timeout_s", "time_limit_s", "learning_rate", "lr", "max_grad_norm",
                             "sft_learning_rate", "epochs")},
    **{n: NON_NEGATIVE for n in ("warmup_steps", "sft_warmup_steps", "weight_decay", "sft_weight_decay",
                                 "format_weight", "kl_beta", "temperature", "checkpoint_every", "min_lr", "n",
                                 "limit", "lora_rank", "cfg_scale", "eps")},
    **{n: AT_LEAST_1 for n in ("max_steps", "prompts_per_step", "inner_iters", "batch_size", "eval_batch_size",
                               "sft_batch_size", "grad_accum", "num_samples", "num_seeds", "grade_workers", "steps",
                               "gen_length", "block_length", "micro_batch_size", "keep_checkpoints", "max_length",
                               "sft_steps", "sft_max_length", "min_chunk_size", "max_chunk_size", "workers")},
    "group_size": AT_LEAST_2,
    "threshold": ("in (0, 1] (a token probability; Fast-dLLM's parallel decoding)", lambda v: 0 < v <= 1),
}

#: (low, high): within one configurable, low <= high.
RELATIONS = (("hint_ratio_low", "hint_ratio_high"), ("min_chunk_size", "max_chunk_size"), ("min_lr", "lr"),
             ("sft_min_learning_rate", "sft_learning_rate"))


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not (isinstance(v, float) and math.isnan(v))


def _defaults(fn) -> dict[str, Any]:
    try:
        return {p.name: p.default for p in inspect.signature(fn).parameters.values()
                if p.default is not inspect.Parameter.empty}
    except (TypeError, ValueError):
        return {}


def value_problems() -> list[str]:
    """Out-of-range bound values and broken relations in the current gin config, one line each."""
    from igpo_kit.config import COMPONENTS_PREFIX, MACRO, _deref, _resolve_selector

    problems = []
    for (scope, selector), params in gin.config._CONFIG.items():
        if selector == MACRO:
            continue
        short = selector.removeprefix(COMPONENTS_PREFIX).removeprefix("igpo_kit.")
        where = f"{scope}/{short}" if scope else short
        literal = {k: _deref(v) for k, v in params.items()}
        for name, value in literal.items():
            rule = RANGES.get(name)
            if rule and _number(value) and not rule[1](value):
                problems.append(f"{where}.{name} = {value!r}: must be {rule[0]}")
            elif isinstance(value, float) and math.isnan(value) and name in RANGES:
                problems.append(f"{where}.{name} = nan: must be {RANGES[name][0]}")
            elif name == "report_to":
                from igpo_kit.errors import ConfigError
                from igpo_kit.tracking import check_report_to

                try:
                    check_report_to(value)
                except ConfigError as exc:
                    problems += [f"{where}.{line}" for line in exc.lines]
        fn = _resolve_selector(selector)
        merged = {**(_defaults(fn) if fn is not None else {}), **literal}
        for low, high in RELATIONS:
            if low in merged and high in merged and (low in literal or high in literal):
                a, b = merged[low], merged[high]
                if _number(a) and _number(b) and a > b:
                    problems.append(f"{where}: {low} = {a!r} is larger than {high} = {b!r}")
    return problems


# --- data ------------------------------------------------------------------------------------------------------


def _params(ref: gin.config.ConfigurableReference) -> dict[str, Any]:
    """The parameters bound for ``ref`` in its scope (outer scopes first, inner scopes override)."""
    from igpo_kit.config import _deref

    selector = ref.configurable.selector
    out: dict[str, Any] = {}
    for i in range(len(ref.scopes) + 1):
        out.update(gin.config._CONFIG.get(("/".join(ref.scopes[:i]), selector), {}))
    return {k: _deref(v) for k, v in out.items()}


def _is_dataset(ref: Any) -> bool:
    return isinstance(ref, gin.config.ConfigurableReference) and ref.evaluate and (
        ref.configurable.selector.startswith("igpo_kit.components.dataset.")
        or (getattr(ref.configurable.wrapped, "__module__", "") or "").startswith("igpo_kit.data."))


def _cheap(ref: gin.config.ConfigurableReference) -> bool:
    """Synthetic data, or a local file that exists (one an earlier stage will write is left to the job)."""

    fn = ref.configurable.wrapped
    if (getattr(fn, "__module__", "") or "").endswith(".synthetic"):
        return True
    path = _params(ref).get("path", _defaults(fn).get("path"))
    if not isinstance(path, str):
        return False
    from igpo_kit.assets import resolve_data

    return Path(resolve_data(path)).expanduser().is_file()


def _tiny_positions() -> int | None:
    """``max_positions`` of the job's ``model.tiny`` (character-level tokenizer), else None (not cheaply known)."""
    from igpo_kit.config import ENTRY_PREFIX, _deref

    for (scope, selector), params in gin.config._CONFIG.items():
        if not selector.startswith(ENTRY_PREFIX):
            continue
        ref = _deref(params.get("model"))
        if not (isinstance(ref, gin.config.ConfigurableReference) and ref.configurable.selector.endswith(".tiny")):
            continue
        p = _params(ref)
        if p.get("path"):
            cfg = Path(str(p["path"])) / "config.json"
            try:
                return int(json.loads(cfg.read_text())["max_position_embeddings"])
            except (OSError, ValueError, KeyError, TypeError):
                return None
        return int(p.get("max_positions", _defaults(ref.configurable.wrapped).get("max_positions", 0))) or None
    return None


def data_problems(processes: int = 1) -> list[str]:
    """Build the cheap datasets of the current config and check them (see the module docstring)."""
    from igpo_kit.config import COMPONENTS_PREFIX, ENTRY_PREFIX, _deref
    from igpo_kit.errors import ConfigError

    problems: list[str] = []
    positions = _tiny_positions()
    seen: dict[str, Any] = {}
    for (scope, selector), params in list(gin.config._CONFIG.items()):
        ref = _deref(params.get("dataset"))
        if not _is_dataset(ref) or not _cheap(ref):
            continue
        owner = selector.removeprefix(COMPONENTS_PREFIX).removeprefix("igpo_kit.")
        owner = f"{scope}/{owner}" if scope else owner
        key = repr(ref) + repr(sorted(_params(ref).items(), key=lambda kv: kv[0]))
        if key not in seen:
            try:
                seen[key] = list(copy.deepcopy(ref))  # gin evaluates an @ref() when it is deep-copied
            except ConfigError as exc:
                seen[key] = None
                problems += exc.lines
        examples = seen[key]
        if examples is None:
            continue
        name = repr(ref).removeprefix("@")
        if not examples:
            problems.append(f"{owner}.dataset ({name}) has 0 examples")
            continue
        if selector == ENTRY_PREFIX + "rl":
            k = _deref(params.get("prompts_per_step", 1))
            if isinstance(k, int) and len(examples) < k * processes:
                problems.append(f"{owner}.dataset ({name}) has {len(examples)} example(s), fewer than one step's "
                                f"worth: prompts_per_step ({k}) x processes ({processes}) = {k * processes}")
        if positions:
            longest = max(examples, key=lambda ex: len(getattr(ex, "question", "") or ""))
            n = len(longest.question)
            if n >= positions:
                problems.append(f"{owner}.dataset ({name}): the prompt of {longest.id} is at least {n} tokens, "
                                f"more than the model's {positions} positions (model.tiny max_positions)")
    return problems
