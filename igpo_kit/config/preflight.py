"""Checks of a parsed config that run before anything is written: value ranges, relations, and the data.

:func:`value_problems` (cheap, part of :func:`igpo_kit.config.validate`): ranges of bound values by parameter
name (the same name means the same thing in every component: ``hint_ratio_*`` is eta in [0, 1], ``group_size`` is G
>= 2, every ``*timeout*`` is > 0, ...) and relations between the parameters of one configurable (eta_low <=
eta_high, min_chunk_size <= max_chunk_size, min_lr <= lr).

:func:`data_problems` builds the datasets that are cheap to build here (synthetic ones and local files that
exist; a Hub id, or a file an earlier stage will write, is left to the job) and checks that each is non-empty, that
an RL dataset holds at least one step's worth (``prompts_per_step`` x the planned number of processes, which the
caller takes from the launch plan: :func:`igpo_kit.launch.submit.planned_processes`), and that the longest prompt
(in the model's own tokens, under its chat template) plus the sampler's ``gen_length`` fits the model's maximum
sequence length. The tokenizer and that maximum are read without loading weights (:func:`model_limit`): built for
``model.tiny``, from a local checkpoint folder's tokenizer files and ``config.json`` otherwise; a hub id is skipped
(nothing is downloaded). Every problem is one line.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import warnings
from dataclasses import dataclass
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
                             "sft_learning_rate", "epochs", "embedding_std")},
    **{n: NON_NEGATIVE for n in ("warmup_steps", "sft_warmup_steps", "weight_decay", "sft_weight_decay",
                                 "format_weight", "kl_beta", "temperature", "checkpoint_every", "min_lr", "n",
                                 "limit", "lora_rank", "cfg_scale", "eps")},
    **{n: AT_LEAST_1 for n in ("max_steps", "prompts_per_step", "inner_iters", "batch_size", "eval_batch_size",
                               "sft_batch_size", "grad_accum", "num_samples", "num_seeds", "grade_workers", "steps",
                               "gen_length", "block_length", "micro_batch_size", "keep_checkpoints", "max_length",
                               "sft_steps", "sft_max_length", "min_chunk_size", "max_chunk_size", "workers",
                               "num_threads", "sft_num_threads", "arm_processes")},
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


@dataclass(frozen=True)
class ModelLimit:
    """What the prompt-length check needs of the job's model, read without its weights.

    tokenizer: the model's tokenizer (with its chat template); maximum: the longest sequence (prompt +
    gen_length) its positions allow; source: where ``maximum`` was read (for the message).
    """

    tokenizer: Any
    maximum: int
    source: str


#: registered models whose tokenizer and maximum length preflight can read from their local folder
KNOWN_MODELS = ("tiny", "llada", "dream", "masked_lm")


def _job_model() -> gin.config.ConfigurableReference | None:
    """The ``model`` bound to the job's entry (``entry.rl.model``, ``entry.evaluate.model``...), else None."""
    from igpo_kit.config import ENTRY_PREFIX, _deref

    for (scope, selector), params in gin.config._CONFIG.items():
        ref = _deref(params.get("model")) if selector.startswith(ENTRY_PREFIX) else None
        if isinstance(ref, gin.config.ConfigurableReference) and ref.evaluate:
            return ref
    return None


def model_limit() -> ModelLimit | None:
    """The job's model's tokenizer and maximum sequence length, without loading weights; None when not cheaply
    known: a model preflight does not know, a hub id (nothing is downloaded here), a folder an earlier stage will
    write, a ``config.json`` naming no maximum (neither ``max_sequence_length`` nor ``max_position_embeddings``),
    or a tokenizer that does not load (the job then reports it).

    ``model.tiny`` without ``path`` builds its character-level tokenizer (no network); a local checkpoint folder
    gives ``config.json`` (:func:`igpo_kit.models.hf.max_positions`) and the tokenizer files beside it. A tokenizer
    class that ships as remote code is never run here (``trust_remote_code`` off; Dream's falls back to Qwen2's).
    """
    from igpo_kit.config import COMPONENTS_PREFIX

    ref = _job_model()
    if ref is None or not ref.configurable.selector.startswith(COMPONENTS_PREFIX + "model."):
        return None
    name = ref.configurable.selector.removeprefix(COMPONENTS_PREFIX + "model.")
    if name not in KNOWN_MODELS:
        return None
    p = {**_defaults(ref.configurable.wrapped), **_params(ref)}
    if name == "tiny" and not p.get("path"):
        from igpo_kit.models.tiny import build_dream_tokenizer, build_tokenizer

        if not _number(p.get("max_positions")) or p["max_positions"] < 1:
            return None
        tok = build_dream_tokenizer() if p.get("architecture") == "dream" else build_tokenizer()
        return ModelLimit(tok, int(p["max_positions"]), "model.tiny max_positions")
    if not isinstance(p.get("path"), str):
        return None
    folder = Path(p["path"]).expanduser()
    config_file = folder / "config.json"
    if not config_file.is_file():
        return None
    from igpo_kit.models.hf import max_positions

    try:
        raw = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return None
    maximum = max_positions(raw) if isinstance(raw, dict) else None
    if maximum is None:
        return None
    key = next(k for k in ("max_sequence_length", "max_position_embeddings") if raw.get(k) == maximum)
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its notes (config class, deprecations) are the job's to show, not validate's
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if name == "tiny":
                from transformers import AutoTokenizer

                tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            else:
                from igpo_kit.models.hf import load_tokenizer

                tok = load_tokenizer(str(folder), False, f"model.{name}")
    except Exception:  # noqa: BLE001 - a tokenizer that does not load here is the job's to report, with its own error
        return None
    finally:
        hf_logging.set_verbosity(verbosity)
    return ModelLimit(tok, maximum, f"{key} in {config_file}")


def longest_prompt(tokenizer: Any, prompt: Any, examples: list, margin: int = 8, cap: int = 64,
                   chunk: int = 2048) -> tuple[Any, int]:
    """The example whose prompt is longest in tokens, and that length (the ids every sampler gets:
    :func:`igpo_kit.models.base.chat_prompt_ids` of ``prompt``'s messages and prefill).

    The questions are counted alone, in batched tokenizer calls from the longest in UTF-8 bytes down, stopping where
    no shorter one can come within ``margin`` tokens of the longest so far (a question of B bytes is at most B + 1
    tokens: byte-level BPE, SentencePiece's word-start marker, one id per character); the prompts of those within
    ``margin`` tokens of the longest question (at most ``cap``) are then rendered and counted exactly (the template
    adds the same text to every question, so only a token or two at its seams can reorder them).
    """
    from igpo_kit.models.base import chat_prompt_ids

    questions = [str(ex.question) for ex in examples]
    size = [len(q.encode()) for q in questions]
    order = sorted(range(len(examples)), key=lambda i: -size[i])
    counts: dict[int, int] = {}
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        if counts and size[part[0]] + 1 < max(counts.values()) - margin:
            break
        for i, ids in zip(part, tokenizer([questions[i] for i in part], add_special_tokens=False)["input_ids"]):
            counts[i] = len(ids)
    top = max(counts.values())
    near = sorted((i for i in counts if counts[i] >= top - margin), key=lambda i: (-counts[i], i))[:cap]
    lengths = {i: len(chat_prompt_ids(tokenizer, prompt.messages(examples[i]), prompt.prefill)) for i in near}
    best = max(lengths, key=lambda i: (lengths[i], -i))
    return examples[best], lengths[best]


def _length_problem(owner: str, name: str, params: dict[str, Any], examples: list, limit: ModelLimit) -> str | None:
    """One line when the longest prompt of ``examples`` plus the owner's sampler's ``gen_length`` does not fit."""
    from igpo_kit.config import _deref
    from igpo_kit.errors import ConfigError

    sampler = _deref(params.get("sampler"))
    if not (isinstance(sampler, gin.config.ConfigurableReference) and sampler.evaluate):
        return None  # nothing generates from these prompts here (SFT drops over-long rows itself)
    gen = {**_defaults(sampler.configurable.wrapped), **_params(sampler)}.get("gen_length", 0)
    gen = int(gen) if _number(gen) else 0
    ref = _deref(params.get("prompt"))
    try:
        if isinstance(ref, gin.config.ConfigurableReference) and ref.evaluate:
            prompt = copy.deepcopy(ref)  # gin evaluates an @ref() when it is deep-copied
        else:
            from igpo_kit.data.prompts import llada_reasoning

            prompt = llada_reasoning()  # the default of entry.rl and tasks.task
        example, n = longest_prompt(limit.tokenizer, prompt, examples)
    except (ConfigError, AttributeError, TypeError, ValueError):
        return None  # a prompt or chat template that does not render here is reported by the job
    if n + gen <= limit.maximum:
        return None
    where = f" ({example.source})" if getattr(example, "source", "") else ""
    return (f"{owner}.dataset ({name}): the longest prompt, {example.id}{where}, is {n} tokens; + gen_length {gen} "
            f"= {n + gen}, more than the model's {limit.maximum} positions ({limit.source}): shorten the prompts "
            f"or gen_length")


def data_problems(processes: int = 1, origin: str = "") -> list[str]:
    """Build the cheap datasets of the current config and check them (see the module docstring).

    ``processes``: the planned number of processes of the job (an RL step draws ``prompts_per_step`` prompts on
    each); ``origin``: where that number comes from (a launch profile, ``$WORLD_SIZE``), named in the message.
    """
    from igpo_kit.config import COMPONENTS_PREFIX, ENTRY_PREFIX, _deref
    from igpo_kit.errors import ConfigError

    problems: list[str] = []
    limits: list[ModelLimit | None] = []  # read once, when the first cheap dataset needs it
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
                                f"worth: prompts_per_step ({k}) x processes ({processes}) = {k * processes}"
                                + (f" (processes: {origin})" if origin else ""))
        if not limits:
            limits.append(model_limit())
        if limits[0] is not None:
            line = _length_problem(owner, name, params, examples, limits[0])
            if line:
                problems.append(line)
    return problems
