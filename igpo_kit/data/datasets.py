"""Dataset factories (registry kind ``dataset``): each returns ``list[Example]`` in file order.

Every factory takes ``path`` (a Hub id, or a local ``.jsonl``/``.json``/``.parquet`` file, which works offline),
``split`` (Hub split; for a local file it only appears in the example ids), ``limit`` (keep the first N examples
after filtering) and field-name options where the sources differ. Bad rows raise
:class:`~igpo_kit.data.io.DataError` naming the file, the line (JSONL) or row, and the field.

Ids are ``"<dataset>/<split>/<index of the row in the source, 0-based>"``, so they stay stable under ``limit`` and
filtering (``"gsm8k/test/17"``).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

from igpo_kit.data.examples import Example
from igpo_kit.data.io import DataError, Row, read_located, require
from igpo_kit.errors import ConfigError
from igpo_kit.grading.extract import format_number, gsm8k_gold, last_boxed, strip_calculator_annotations

__all__ = [
    "gsm8k",
    "math500",
    "amc",
    "minerva",
    "metamathqa",
    "openr1_math",
    "jsonl",
    "answer_text",
    "metamath_answer",
    "gsm8k_trace",
]


# --- helpers ----------------------------------------------------------------------------------------------------


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ConfigError(f"limit must be None or an integer >= 0, got {limit!r}")


def _meta(row: Row, used: Iterable[str]) -> dict[str, Any]:
    skip = set(used)
    return {k: v for k, v in row.data.items() if k not in skip}


def answer_text(value: Any) -> str:
    """A gold answer as a string: ``142.0`` -> ``"142"``, ``0.5`` -> ``"0.5"``, ``" 18 "`` -> ``"18"``."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return format_number(value)
    text = str(value).strip()
    if re.fullmatch(r"-?\d+\.0+", text):
        text = text.split(".")[0]
    return text


def _nonempty(row: Row, field: str, value: str) -> str:
    if not value.strip():
        raise DataError(f"{row.where}: empty gold answer (field {field!r})", path=row.source, line=row.line)
    return value


def _take(examples: Iterable[Example], limit: int | None) -> list[Example]:
    out: list[Example] = []
    if limit == 0:
        return out
    for ex in examples:  # lazy: rows after the limit are never validated
        out.append(ex)
        if limit is not None and len(out) >= limit:
            break
    return out


# --- GSM8K ------------------------------------------------------------------------------------------------------


def gsm8k_trace(solution: str) -> str | None:
    """GSM8K solution text before ``####`` with ``<<...>>`` calculator annotations removed (None if empty)."""
    body = solution.split("####")[0]
    body = strip_calculator_annotations(body).strip()
    return body or None


def gsm8k(
    path: str = "openai/gsm8k",
    name: str | None = "main",
    split: str = "test",
    limit: int | None = None,
    question_field: str = "question",
    answer_field: str = "answer",
) -> list[Example]:
    """GSM8K (1319 test problems). Gold = text after ``####``, commas removed; trace = the solution before it."""
    _check_limit(limit)
    rows = read_located(path, name=name, split=split)

    def gen():
        for i, row in enumerate(rows):
            question, solution = require(row, question_field, answer_field)
            solution = str(solution)
            if "####" not in solution:
                raise DataError(
                    f"{row.where}: field {answer_field!r} has no '####' final answer", path=row.source, line=row.line
                )
            gold = _nonempty(row, answer_field, gsm8k_gold(solution))
            yield Example(
                id=f"gsm8k/{split}/{i}",
                question=str(question),
                answer=gold,
                trace=gsm8k_trace(solution),
                source=str(path),
                meta=_meta(row, (question_field, answer_field)),
            )

    return _take(gen(), limit)


# --- MATH500 / AMC / Minerva ------------------------------------------------------------------------------------


def math500(
    path: str = "HuggingFaceH4/MATH-500",
    name: str | None = None,
    split: str = "test",
    limit: int | None = None,
    question_field: str = "problem",
    answer_field: str = "answer",
    solution_field: str = "solution",
) -> list[Example]:
    """MATH-500 (500 problems): question = problem, answer = answer (else the last box of the solution), trace = solution."""
    _check_limit(limit)
    rows = read_located(path, name=name, split=split)

    def gen():
        for i, row in enumerate(rows):
            (question,) = require(row, question_field)
            solution = row.data.get(solution_field)
            answer = row.data.get(answer_field)
            if answer is None and solution is not None:
                answer = last_boxed(str(solution))
            if answer is None:
                require(row, answer_field)  # raises with the located message
            yield Example(
                id=f"math500/{split}/{i}",
                question=str(question),
                answer=_nonempty(row, answer_field, answer_text(answer)),
                trace=None if solution is None else str(solution),
                source=str(path),
                meta=_meta(row, (question_field, answer_field, solution_field)),
            )

    return _take(gen(), limit)


def amc(
    path: str = "AI-MO/aimo-validation-amc",
    name: str | None = None,
    split: str = "train",
    limit: int | None = None,
    question_field: str = "problem",
    answer_field: str = "answer",
) -> list[Example]:
    """AMC 12 2022-2023 (83 problems, the paper's avg@16 set). Float answers become integers: ``142.0`` -> ``"142"``.

    The Hub set has one split, ``train``. A local copy (e.g. a JSONL with ``problem``/``answer``) works offline.
    """
    _check_limit(limit)
    rows = read_located(path, name=name, split=split)

    def gen():
        for i, row in enumerate(rows):
            question, answer = require(row, question_field, answer_field)
            yield Example(
                id=f"amc/{split}/{i}",
                question=str(question),
                answer=_nonempty(row, answer_field, answer_text(answer)),
                trace=None,
                source=str(path),
                meta=_meta(row, (question_field, answer_field)),
            )

    return _take(gen(), limit)


def minerva(
    path: str = "knoveleng/Minerva-Math",
    name: str | None = None,
    split: str = "train",
    limit: int | None = None,
    question_field: str = "problem",
    solution_field: str = "solution",
    answer_field: str | None = "answer",
) -> list[Example]:
    """Minerva Math (272 problems). Gold = ``answer_field`` when the row has it, else the last ``\\boxed{}`` of the solution.

    The Hub copy's id and split names vary between mirrors: a local file works offline, e.g. Qwen2.5-Math's
    ``evaluation/data/minerva_math/test.jsonl`` (fields ``problem``, ``solution``, ``type``, ``idx``).
    """
    _check_limit(limit)
    rows = read_located(path, name=name, split=split)

    def gen():
        for i, row in enumerate(rows):
            (question,) = require(row, question_field)
            solution = row.data.get(solution_field)
            answer = row.data.get(answer_field) if answer_field else None
            if answer is None:
                (solution,) = require(row, solution_field)
                answer = last_boxed(str(solution))
                if answer is None:
                    raise DataError(
                        f"{row.where}: no balanced \\boxed{{}} in field {solution_field!r} to take the gold answer from",
                        path=row.source,
                        line=row.line,
                    )
            yield Example(
                id=f"minerva/{split}/{i}",
                question=str(question),
                answer=_nonempty(row, answer_field or solution_field, answer_text(answer)),
                trace=None if solution is None else str(solution),
                source=str(path),
                meta=_meta(row, (question_field, solution_field, answer_field or "")),
            )

    return _take(gen(), limit)


# --- MetaMathQA -------------------------------------------------------------------------------------------------

_ANSWER_IS = "The answer is:"


def metamath_answer(response: str) -> str:
    """Text after the **last** ``"The answer is:"`` (stripped); else after ``####``; else the whole response (spec sec. 8)."""
    if _ANSWER_IS in response:
        return response.rsplit(_ANSWER_IS, 1)[1].strip()
    if "####" in response:
        return response.split("####")[-1].strip()
    return response.strip()


def metamathqa(
    path: str = "meta-math/MetaMathQA",
    name: str | None = None,
    split: str = "train",
    limit: int | None = None,
    types: Sequence[str] | None = ("GSM_AnsAug", "MATH_AnsAug"),
    dedupe: bool = True,
    trace_prefix: str = "",
) -> list[Example]:
    """MetaMathQA AnsAug (the IGPO RL set, spec sec. 8): GSM8K-train and MATH-train rewrites with full responses.

    types: keep rows whose ``type`` is one of these (None keeps all).
    dedupe: keep the first occurrence of each exact ``query`` in file order (fixes which response is the trace).
    trace_prefix: prepended to the trace; the released code uses ``"<reasoning>\\n"`` (the response itself is the
        trace, final answer included, sec. 3.1).
    answer = text after the last ``"The answer is:"`` (fallback ``####``, else the whole response).
    The local file ``MetaMathQA-395K.json`` (a JSON list) works offline.
    """
    _check_limit(limit)
    keep = None if types is None else set(types)
    rows = read_located(path, name=name, split=split)

    def gen():
        seen: set[str] = set()
        for i, row in enumerate(rows):
            if keep is not None:
                (kind,) = require(row, "type")
                if kind not in keep:
                    continue
            query, response = require(row, "query", "response")
            query, response = str(query), str(response)
            if dedupe:
                if query in seen:
                    continue
                seen.add(query)
            yield Example(
                id=f"metamathqa/{split}/{i}",
                question=query,
                answer=_nonempty(row, "response", metamath_answer(response)),
                trace=trace_prefix + response,
                source=str(path),
                meta=_meta(row, ("query", "response")),
            )

    return _take(gen(), limit)


# --- OpenR1-Math ------------------------------------------------------------------------------------------------


def openr1_math(
    path: str = "open-r1/OpenR1-Math-220k",
    name: str | None = "default",
    split: str = "train",
    limit: int | None = None,
    question_field: str = "problem",
    answer_field: str = "answer",
    trace_source: str = "solution",
) -> list[Example]:
    """OpenR1-Math-220k (the paper's Length-Aligned SFT source, ``default`` config, 94k rows).

    trace_source: "solution" (the reference solution; the first generation if it is empty) or "generation"
        (the first of ``generations``; the solution if there is none).
    """
    if trace_source not in ("solution", "generation"):
        raise ConfigError(f"trace_source must be 'solution' or 'generation', got {trace_source!r}")
    _check_limit(limit)
    rows = read_located(path, name=name, split=split)

    def first_generation(row: Row) -> str | None:
        gens = row.data.get("generations")
        if isinstance(gens, (list, tuple)):
            for g in gens:
                if g:
                    return str(g)
        return None

    def gen():
        for i, row in enumerate(rows):
            question, answer = require(row, question_field, answer_field)
            solution = row.data.get("solution")
            solution = str(solution) if solution else None
            if trace_source == "solution":
                trace = solution or first_generation(row)
            else:
                trace = first_generation(row) or solution
            yield Example(
                id=f"openr1_math/{split}/{i}",
                question=str(question),
                answer=_nonempty(row, answer_field, answer_text(answer)),
                trace=trace,
                source=str(path),
                meta=_meta(row, (question_field, answer_field, "solution", "generations")),
            )

    return _take(gen(), limit)


# --- generic ----------------------------------------------------------------------------------------------------


def jsonl(
    path: str = "",
    question_field: str = "question",
    answer_field: str = "answer",
    trace_field: str | None = None,
    id_field: str | None = None,
    limit: int | None = None,
    split: str = "train",
) -> list[Example]:
    """Any local ``.jsonl``/``.json``/``.parquet`` file (or Hub id) with configurable field names.

    id = ``str(row[id_field])`` when ``id_field`` is set, else ``"<file stem>/<split>/<index>"``.
    """
    if not path:
        raise ConfigError("dataset.jsonl: `path` is required (a .jsonl/.json/.parquet file or a Hub id)")
    _check_limit(limit)
    rows = read_located(path, split=split)
    stem = str(path).rstrip("/").split("/")[-1].rsplit(".", 1)[0] or "data"

    def gen():
        for i, row in enumerate(rows):
            question, answer = require(row, question_field, answer_field)
            trace = None
            if trace_field:
                (trace,) = require(row, trace_field)
                trace = str(trace)
            ex_id = f"{stem}/{split}/{i}"
            if id_field:
                (raw_id,) = require(row, id_field)
                ex_id = str(raw_id)
            used = [question_field, answer_field] + [f for f in (trace_field, id_field) if f]
            yield Example(
                id=ex_id,
                question=str(question),
                answer=_nonempty(row, answer_field, answer_text(answer)),
                trace=trace,
                source=str(path),
                meta=_meta(row, used),
            )

    return _take(gen(), limit)
