"""The trace-rewriting job's root (paper Sec. 3.2, App. D and I): verbose traces -> concise tagged traces.

Outputs (``out_path``, default ``<run dir>/rewritten.jsonl``; see :mod:`igpo_kit.rewrite.job`): the kept rows as
Examples (readable by ``@dataset.jsonl(trace_field='trace', id_field='id')`` for SFT), ``*.rejected.jsonl``,
``*.lengths.png`` (trace lengths before / after, as Fig. 6) and ``*.report.json``; ``metrics.jsonl`` gets one
progress record per backend batch and a final summary record.

Resumable: running the same config again skips rows already written or rejected. Rows whose backend call failed
are not recorded; when there are any the job ends as failed (``FAILED``, exit 1) so that running it again retries
exactly those rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEFAULT_OUT = "rewritten.jsonl"


def rewrite(
    backend: Any = None,
    dataset: Any = None,
    out_path: str | None = None,
    min_words: int = 100,
    max_words: int = 1000,
    paper_wording: bool = False,
    retry_rejected: bool = False,
    tokenizer_path: str | None = None,
    histogram: bool = True,
    seed: int = 0,
    run: Any = None,
) -> dict:
    """Rewrite the traces of ``dataset`` with ``backend`` (App. I prompt), keeping well-formed, correct rewrites.

    Args:
        backend: a rewrite backend (``@rewrite_backend.openai_http()``: an OpenAI-compatible endpoint serving a
            Llama-class model, the paper used Llama-4-Maverick; ``@rewrite_backend.transformers_causal()``).
        dataset: Examples with traces (``@dataset.openr1_math()`` with ``trace_source = 'generation'``: the
            R1 generations the App. I prompt rewrites).
        out_path: the output JSONL (default ``<run dir>/rewritten.jsonl``); a path outside the run directory is
            shared by every run writing to it (rows already there are skipped).
        min_words, max_words: range of the per-row target length in words (paper: 100-1000).
        paper_wording: send the paper's "random length between ..." sentence instead of a drawn target.
        retry_rejected: re-attempt rows recorded as rejected (format or answer) by an earlier run.
        tokenizer_path: count trace lengths in tokens of this tokenizer (``AutoTokenizer``; Fig. 6 counts LLaDA
            tokens); default: the backend's tokenizer if it has one, else words.
        histogram: write the before / after length histogram (PNG).
        seed: per-row target lengths and the backend's sampling seeds.
        run: the run record (passed by the runner).
    Returns:
        the :class:`~igpo_kit.rewrite.job.RewriteReport` counts and paths.
    """
    from igpo_kit.errors import ConfigError, RunError
    from igpo_kit.rewrite.job import rewrite_traces

    missing = [n for n, v in dict(backend=backend, dataset=dataset, run=run).items() if v is None]
    if missing:
        raise ConfigError(f"entry.rewrite needs {', '.join(missing)}")
    tokenizer = _tokenizer(tokenizer_path) if tokenizer_path else None
    out = Path(out_path) if out_path else run.dir / DEFAULT_OUT
    call = len(run.info.get("starts", [])) or 1

    def log(record: dict) -> None:
        run.log({"call": call, **record})

    report = rewrite_traces(list(dataset), backend, out, seed=seed, min_words=min_words, max_words=max_words,
                            tokenizer=tokenizer, paper_wording=paper_wording, retry_rejected=retry_rejected,
                            histogram=histogram, log=log)
    summary = report.as_dict()
    run.log({"call": call, "summary": True, **{k: v for k, v in summary.items() if not k.endswith("_path")}})
    if report.failed:
        raise RunError(f"{report.failed} of {report.attempted} rows failed at the backend ({report.backend}); "
                       f"{report.written} written this run, {report.rows_total} in {out}: run the same config "
                       "again to retry the failed rows")
    return summary


def _tokenizer(path: str):
    """``AutoTokenizer.from_pretrained(path)`` (no remote code), or a ConfigError naming the binding."""
    from transformers import AutoTokenizer

    from igpo_kit.errors import ConfigError

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"entry.rewrite.tokenizer_path = {path!r}: cannot load a tokenizer ({first})") from None
