"""Trace rewriting job (paper Sec. 3.2, App. D and I): verbose traces -> concise tagged traces of a target length.

For each example with a trace, the App. I prompt (with a seeded random target of ``min_words..max_words`` words,
see :mod:`igpo_kit.rewrite.prompt`) goes to a backend; the reply is kept only if

* **format**: exactly one ``<reasoning>…</reasoning>`` followed by exactly one ``<answer>…</answer>`` (whitespace
  around them and a surrounding Markdown code fence are tolerated and removed), non-empty reasoning, and a
  balanced ``\\boxed{…}`` inside the answer;
* **answer**: the first boxed answer equals the gold answer (normalised string compare, numeric compare, then
  math-verify when installed).

Outputs (``out_path`` = ``X.jsonl``):

* ``X.jsonl``: one kept row per line, an :class:`~igpo_kit.data.examples.Example` as JSON (``id``, ``question``,
  ``answer``, ``trace`` = the rewritten text, ``source``, ``meta``), with ``meta["rewrite"]`` = target / before /
  after lengths and the backend name. Readable by ``dataset.jsonl``-style loaders and directly by SFT.
* ``X.rejected.jsonl``: dropped rows (``id``, ``reason`` = ``format`` | ``answer``, ``output``); skipped on re-runs
  unless ``retry_rejected=True``.
* ``X.lengths.png``: histogram of trace lengths before / after (tokens of ``tokenizer``, else words), as Fig. 6.
* ``X.report.json``: the :class:`RewriteReport` counts.

Resumable: rows whose id is already in ``X.jsonl`` (or rejected) are skipped; each batch is appended and fsynced,
and a torn last line left by a crash is cut off before appending. Backend failures (after the backend's own
retries) are counted and not recorded, so the next run retries them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from igpo_kit.atomic import write_atomic
from igpo_kit.grading.extract import answer_region, boxed_contents, first_boxed, parse_number
from igpo_kit.rewrite.prompt import rewrite_prompt, target_words

__all__ = ["RewriteReport", "rewrite_traces", "check_format", "answers_match", "sidecar_paths"]

_TAGS = ("<reasoning>", "</reasoning>", "<answer>", "</answer>")
_LAYOUT_RE = re.compile(r"^<reasoning>(?P<reasoning>.*)</reasoning>\s*<answer>(?P<answer>.*)</answer>$", re.DOTALL)
_FENCE_RE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n(?P<body>.*?)\n?```$", re.DOTALL)


# --- checks -----------------------------------------------------------------------------------------------------


def check_format(text: str) -> tuple[str | None, str]:
    """``(clean_text, "")`` when ``text`` is ``<reasoning>…</reasoning> <answer>…\\boxed{…}…</answer>``, else
    ``(None, why)``. ``clean_text`` is stripped and unfenced."""
    t = text.strip()
    m = _FENCE_RE.match(t)
    if m:
        t = m.group("body").strip()
    counts = {tag: t.count(tag) for tag in _TAGS}
    if any(c != 1 for c in counts.values()):
        return None, "tags: " + ", ".join(f"{k}x{v}" for k, v in counts.items() if v != 1)
    m = _LAYOUT_RE.match(t)
    if m is None:
        return None, "tags out of order or text outside them"
    if not m.group("reasoning").strip():
        return None, "empty reasoning"
    boxes = boxed_contents(m.group("answer"))
    if not boxes or boxes[0] is None or not boxes[0]:
        return None, "no balanced \\boxed{} in the answer"
    return t, ""


_STRIP_RE = [
    (re.compile(r"\\left|\\right|\\!|\\,|\\;|\\ |\$"), ""),
    (re.compile(r"\\[dt]frac"), r"\\frac"),
    (re.compile(r"\^\{?\\circ\}?"), ""),
    (re.compile(r"\\%|%"), ""),
    (re.compile(r"\\text\{\s*([^{}]*)\}"), r"\1"),
    (re.compile(r"\s+"), ""),
]


def _norm(s: str) -> str:
    s = s.strip()
    inner = first_boxed(s)
    if inner is not None and s.startswith("\\boxed"):
        s = inner
    for pat, rep in _STRIP_RE:
        s = pat.sub(rep, s)
    return s.rstrip(".").lower()


def _math_verify(gold: str, pred: str) -> bool:
    try:
        from math_verify import parse, verify
    except ImportError:  # pragma: no cover - math-verify is a dependency, but stay usable without it
        return False
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    try:
        g = parse(f"${gold}$", parsing_timeout=timeout)
        p = parse(f"${pred}$", parsing_timeout=timeout)
        return bool(g) and bool(p) and bool(verify(g, p, timeout_seconds=timeout))
    except Exception:
        return False


def answers_match(pred: str, gold: str) -> bool:
    """Whether the boxed ``pred`` states the gold answer: normalised strings, numbers, then math-verify."""
    a, b = _norm(pred), _norm(gold)
    if a == b and a:
        return True
    x, y = parse_number(a), parse_number(b)
    if x is not None and y is not None:
        return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
    return _math_verify(_norm_gold_for_mv(gold), pred)


def _norm_gold_for_mv(gold: str) -> str:
    inner = first_boxed(gold.strip())
    return inner if inner is not None and gold.strip().startswith("\\boxed") else gold.strip()


# --- IO ---------------------------------------------------------------------------------------------------------


def sidecar_paths(out_path: str | os.PathLike) -> dict[str, Path]:
    """``{"rejected", "histogram", "report"}`` paths beside ``out_path``."""
    p = Path(out_path)
    stem = p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else p.name
    return {
        "rejected": p.with_name(stem + ".rejected.jsonl"),
        "histogram": p.with_name(stem + ".lengths.png"),
        "report": p.with_name(stem + ".report.json"),
    }


def _repair_tail(path: Path) -> None:
    """Cut a torn last line (no trailing newline) left by an interrupted append."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        data = path.read_bytes()
        cut = data.rfind(b"\n") + 1
        f.truncate(cut)


def _read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    _repair_tail(path)
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def _append(path: Path, rows: Iterable[dict]) -> None:
    rows = list(rows)
    if not rows:
        return
    with open(path, "a", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


# --- lengths / histogram ----------------------------------------------------------------------------------------


def _length_fn(tokenizer: Any, backend: Any) -> tuple[Callable[[str], int], str]:
    tok = tokenizer
    if tok is None:
        try:
            tok = getattr(backend, "tokenizer", None)
        except Exception:
            tok = None
    if tok is None:
        return (lambda s: len(s.split())), "words"
    if hasattr(tok, "encode"):
        return (lambda s: len(tok.encode(s, add_special_tokens=False))), "tokens"
    return (lambda s: int(tok(s))), "tokens"


def _stats(values: Sequence[int]) -> dict[str, float]:
    from igpo_kit.sft.data import LengthStats

    s = LengthStats.of(list(values))
    return {"count": s.count, "mean": s.mean, "p50": s.p50, "p90": s.p90, "max": s.max}


def _histogram(path: Path, before: Sequence[int], after: Sequence[int], unit: str) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)  # Agg canvas, no pyplot: the process-wide backend is left alone
    ax = fig.add_subplot(1, 1, 1)
    hi = max([1, *before, *after])
    bins = min(60, max(5, int(math.sqrt(max(len(before), len(after), 1))) * 3))
    edges = [hi * i / bins for i in range(bins + 1)]
    if before:
        ax.hist(before, bins=edges, alpha=0.55, label=f"before (n={len(before)})", color="tab:gray")
    if after:
        ax.hist(after, bins=edges, alpha=0.7, label=f"after (n={len(after)})", color="tab:blue")
    ax.set_xlabel(f"trace length ({unit})")
    ax.set_ylabel("rows")
    ax.set_title("Trace length before / after rewriting")
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path


# --- job --------------------------------------------------------------------------------------------------------


@dataclass
class RewriteReport:
    """Counts of one :func:`rewrite_traces` call (``*_total`` fields cover the whole output file)."""

    out_path: Path
    rejected_path: Path
    histogram_path: Path | None
    report_path: Path
    total: int = 0  # examples given
    no_trace: int = 0
    skipped_existing: int = 0  # already in out_path
    skipped_rejected: int = 0  # already in the rejected file
    attempted: int = 0
    written: int = 0
    dropped_format: int = 0
    dropped_answer: int = 0
    failed: int = 0  # backend errors; retried on the next run
    rows_total: int = 0  # rows in out_path after this call
    length_unit: str = "words"
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    backend: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("out_path", "rejected_path", "histogram_path", "report_path"):
            d[k] = None if d[k] is None else str(d[k])
        return d


def _batch_seed(seed: int, ids: Sequence[str]) -> int:
    digest = hashlib.sha256(("\x00".join([str(seed), *ids])).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big")


def rewrite_traces(
    examples: Sequence[Any],
    backend: Any,
    out_path: str | os.PathLike,
    seed: int = 0,
    min_words: int = 100,
    max_words: int = 1000,
    *,
    tokenizer: Any = None,
    paper_wording: bool = False,
    retry_rejected: bool = False,
    histogram: bool = True,
    log: Callable[[dict], None] | None = None,
) -> RewriteReport:
    """Rewrite the traces of ``examples`` with ``backend`` into ``out_path`` (JSONL), resumably.

    Args:
        examples: :class:`~igpo_kit.data.examples.Example` objects (``id``, ``question``, ``answer``, ``trace``).
        backend: a rewrite backend (``complete(prompts, seed)``, ``batch_size``, ``name``).
        out_path: the output JSONL; sidecars are written beside it (see the module docstring).
        seed: seeds the per-row target lengths and the backend's sampling.
        min_words, max_words: range of the target length (paper: 100-1000 words).
        tokenizer: counts tokens for the length statistics / histogram (an HF tokenizer, or a callable
            ``str -> int``); default: the backend's tokenizer if it has one, else words.
        paper_wording: use the paper's "random length between ..." sentence instead of a drawn target.
        retry_rejected: re-attempt rows recorded in the rejected file.
        histogram: write the PNG histogram.
        log: called with a progress dict after every batch.
    """
    if not 0 < min_words <= max_words:
        from igpo_kit.errors import ConfigError

        raise ConfigError(f"rewrite: need 0 < min_words <= max_words, got {min_words}, {max_words}")
    log = log or (lambda record: None)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    side = sidecar_paths(out_path)
    backend_name = str(getattr(backend, "name", type(backend).__name__))
    report = RewriteReport(out_path=out_path, rejected_path=side["rejected"], histogram_path=None,
                           report_path=side["report"], total=len(examples), backend=backend_name)

    done = {r.get("id") for r in _read_rows(out_path)}
    rejected = set() if retry_rejected else {r.get("id") for r in _read_rows(side["rejected"])}
    if retry_rejected:
        _repair_tail(side["rejected"])
    length, unit = _length_fn(tokenizer, backend)
    report.length_unit = unit

    todo = []
    seen: set[str] = set()
    for ex in examples:
        if ex.trace is None or not str(ex.trace).strip():
            report.no_trace += 1
        elif ex.id in done:
            report.skipped_existing += 1
        elif ex.id in rejected:
            report.skipped_rejected += 1
        elif ex.id not in seen:
            seen.add(ex.id)
            todo.append(ex)

    bs = max(1, int(getattr(backend, "batch_size", 1)))
    for start in range(0, len(todo), bs):
        batch = todo[start : start + bs]
        targets = [target_words(seed, ex.id, min_words, max_words) for ex in batch]
        prompts = [
            rewrite_prompt(ex.trace, None if paper_wording else t, min_words, max_words)
            for ex, t in zip(batch, targets)
        ]
        outputs = backend.complete(prompts, seed=_batch_seed(seed, [ex.id for ex in batch]))
        if len(outputs) != len(batch):
            raise RuntimeError(f"{backend_name} returned {len(outputs)} completions for {len(batch)} prompts")
        kept, dropped = [], []
        for ex, target, out in zip(batch, targets, outputs):
            report.attempted += 1
            if isinstance(out, BaseException):
                report.failed += 1
                continue
            text, why = check_format(out)
            if text is None:
                report.dropped_format += 1
                dropped.append({"id": ex.id, "reason": "format", "detail": why, "target_words": target, "output": out})
                continue
            pred = first_boxed(answer_region(text))
            if pred is None or not answers_match(pred, ex.answer):
                report.dropped_answer += 1
                dropped.append({"id": ex.id, "reason": "answer", "detail": f"boxed {pred!r} vs gold {ex.answer!r}",
                                "target_words": target, "output": out})
                continue
            meta = dict(ex.meta or {})
            meta["rewrite"] = {
                "backend": backend_name,
                "seed": seed,
                "target_words": None if paper_wording else target,
                "words_before": len(ex.trace.split()),
                "words_after": len(text.split()),
                "length_unit": unit,
                "length_before": length(ex.trace),
                "length_after": length(text),
            }
            kept.append({"id": ex.id, "question": ex.question, "answer": ex.answer, "trace": text,
                         "source": ex.source, "meta": meta})
        _append(out_path, kept)
        _append(side["rejected"], dropped)
        report.written += len(kept)
        log({"done": min(start + bs, len(todo)), "todo": len(todo), "written": report.written,
             "dropped_format": report.dropped_format, "dropped_answer": report.dropped_answer,
             "failed": report.failed})

    rows = _read_rows(out_path)
    report.rows_total = len(rows)
    before = [length(ex.trace) for ex in examples if ex.trace is not None and str(ex.trace).strip()]
    after = []
    for r in rows:
        info = (r.get("meta") or {}).get("rewrite") or {}
        after.append(info["length_after"] if info.get("length_unit") == unit and "length_after" in info
                     else length(r.get("trace") or ""))
    report.before, report.after = _stats(before), _stats(after)
    if histogram:
        report.histogram_path = _histogram(side["histogram"], before, after, unit)
    write_atomic(side["report"], json.dumps(report.as_dict(), indent=1) + "\n")
    return report
