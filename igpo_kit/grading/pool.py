"""Grade many answers with a hard per-answer wall-clock bound: a small fork-based process pool.

:func:`grade_many` is the entry point; :class:`GradingPool` keeps its workers between calls (the RL loop grades every
step: create one pool and pass it as ``pool=``).

Timeout guarantee: the parent watches every worker; when a worker has spent more than ``timeout_s`` on one answer
(measured from its previous result) it is killed (SIGKILL) and replaced, that answer scores 0 and counts as a
timeout, and the rest of its batch is re-queued. So a sympy computation stuck in C code cannot hang the run.
Inside the worker, graders that bound their own time (``self_timed``, e.g. math-verify) get a budget slightly
below ``timeout_s`` (SIGALRM in the worker's main thread), so most timeouts end without killing a process.

Other rules: an exception raised by a grader scores 0 and counts in ``errors``; a worker that dies charges its
current answer as an error. A grader's ``quick_score`` (certain answers from cheap string work, e.g. math-verify's
plain-number fast path and unboxed answers) runs in-process first; only undecided answers reach the pool. ``pure`` graders (bounded string processing) are graded in-process (no pool), and so
are fewer than :data:`IN_PROCESS_BELOW` answers for a ``self_timed`` grader when called from the main thread.
Workers are forked (Linux); they ignore SIGINT, exit when their pipe closes, and are killed by :meth:`close`,
by the context manager, by garbage collection of the pool, and at interpreter exit.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any, Sequence

from igpo_kit.grading.graders import GradingTimeout

__all__ = ["GradeReport", "GradingPool", "grade_many", "IN_PROCESS_BELOW"]

IN_PROCESS_BELOW = 8
_INNER_FRACTION = 0.8  # in-worker budget of a self-timed grader, as a fraction of the parent's timeout
_MAX_CHUNK = 32
_PREFETCH_CHARS = 16_000  # a chunk this small is sent to a busy worker ahead of time (the pipe buffer holds it)


@dataclass
class GradeReport:
    """Result of :func:`grade_many`: ``scores[i]`` for answer ``i`` (0 for timeouts and errors)."""

    scores: list[float]
    timeouts: int
    errors: int
    seconds: float
    timeout_indices: list[int] = field(default_factory=list)
    error_indices: list[int] = field(default_factory=list)
    error_messages: list[str] = field(default_factory=list)  # "index: Type: message", first 20
    in_process: bool = False

    @property
    def answers_per_s(self) -> float:
        return len(self.scores) / self.seconds if self.seconds > 0 else float("inf")


# --- grading one answer (runs in a worker or in-process) --------------------------------------------------------


def _is_mv_timeout(exc: BaseException) -> bool:
    errors = sys.modules.get("math_verify.errors")
    return errors is not None and isinstance(exc, errors.TimeoutException)


def _grade_one(grader: Any, completion: str, gold: str) -> tuple[str, Any]:
    """("ok", score) | ("timeout", None) | ("error", message)."""
    try:
        fn = getattr(grader, "score_checked", None) or grader.score
        value = float(fn(completion, gold))
        if not math.isfinite(value):
            return "error", f"ValueError: non-finite score {value!r}"
        return "ok", value
    except GradingTimeout:
        return "timeout", None
    except Exception as exc:  # noqa: BLE001 - a grader bug must not stop the run
        try:
            msg = f"{type(exc).__name__}: {exc}"[:300]
        except Exception:  # noqa: BLE001
            msg = type(exc).__name__
        return "error", msg
    except BaseException as exc:
        if _is_mv_timeout(exc):
            return "timeout", None
        raise


def _with_budget(grader: Any, seconds: float) -> Any:
    """The grader with its own time budget set to ``seconds`` (if it has a ``timeout_s`` field)."""
    if dataclasses.is_dataclass(grader) and any(f.name == "timeout_s" for f in dataclasses.fields(grader)):
        return dataclasses.replace(grader, timeout_s=seconds)
    return grader


def _worker_main(conn, close_fds: list[int]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for fd in close_fds:  # other workers' parent-side pipe ends, inherited through fork
        try:
            os.close(fd)
        except OSError:
            pass
    import logging  # noqa: PLC0415

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # timeouts are counted, not logged
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        if msg is None:
            break
        grader, items = msg
        for idx, completion, gold in items:
            status, value = _grade_one(grader, completion, gold)
            try:
                conn.send((idx, status, value))
            except (BrokenPipeError, OSError):
                return


# --- the pool ---------------------------------------------------------------------------------------------------


class _Worker:
    __slots__ = ("proc", "conn", "current", "since")

    def __init__(self, proc, conn):
        self.proc = proc
        self.conn = conn
        self.current: deque[int] = deque()  # indices sent and not yet answered, in order
        self.since = 0.0  # when the head of `current` started (last result or dispatch)


def _kill_workers(workers: list[_Worker]) -> None:
    for w in workers:
        try:
            w.conn.close()
        except OSError:
            pass
    for w in workers:
        if w.proc.is_alive():
            w.proc.kill()
    for w in workers:
        w.proc.join(timeout=5)
    workers.clear()


class GradingPool:
    """A reusable set of forked grading workers (see the module docstring for the guarantees).

    ``with GradingPool(workers=2) as pool: report = pool.grade(grader, completions, golds, timeout_s=5)``.
    Workers are started on first use, after ``grader.prepare()`` has run in this process (so they start warm).
    """

    def __init__(self, workers: int = 2, *, start_method: str | None = None):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = int(workers)
        methods = mp.get_all_start_methods()
        self.start_method = start_method or ("fork" if "fork" in methods else methods[0])
        self._ctx = mp.get_context(self.start_method)
        self._live: list[_Worker] = []
        self._prepared: set[type] = set()
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _kill_workers, self._live)
        self.respawns = 0

    # lifecycle
    def close(self) -> None:
        """Stop every worker (idempotent; a later :meth:`grade` starts fresh ones)."""
        _kill_workers(self._live)

    def __enter__(self) -> "GradingPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._live if w.proc.pid is not None]

    def _spawn(self) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        close_fds = [w.conn.fileno() for w in self._live if not w.conn.closed]
        if self.start_method == "fork":
            close_fds.append(parent_conn.fileno())
        else:
            close_fds = []
        proc = self._ctx.Process(target=_worker_main, args=(child_conn, close_fds), daemon=True, name="igpo-grader")
        proc.start()
        child_conn.close()
        w = _Worker(proc, parent_conn)
        self._live.append(w)
        return w

    def _retire(self, w: _Worker, kill: bool) -> None:
        try:
            w.conn.close()
        except OSError:
            pass
        if kill and w.proc.is_alive():
            w.proc.kill()
        w.proc.join(timeout=5)
        if w in self._live:
            self._live.remove(w)

    def _ensure_workers(self) -> None:
        for w in list(self._live):
            if not w.proc.is_alive():
                self._retire(w, kill=False)
        while len(self._live) < self.workers:
            self._spawn()

    # grading
    def grade(
        self,
        grader: Any,
        completions: Sequence[str],
        golds: Sequence[str],
        *,
        timeout_s: float = 5.0,
        progress: bool = False,
    ) -> GradeReport:
        """Grade ``completions[i]`` against ``golds[i]`` in the workers; see :func:`grade_many`."""
        n = _check_lengths(completions, golds)
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        with self._lock:
            return self._grade(grader, completions, golds, float(timeout_s), progress, n)

    def _grade(self, grader, completions, golds, timeout_s, progress, n) -> GradeReport:
        t0 = time.perf_counter()
        if type(grader) not in self._prepared and hasattr(grader, "prepare"):
            grader.prepare()
            self._prepared.add(type(grader))
        if getattr(grader, "self_timed", False):
            grader = _with_budget(grader, timeout_s * _INNER_FRACTION)
        tally = _Tally(n, progress)
        chunk = max(1, min(_MAX_CHUNK, math.ceil(n / (self.workers * 8))))
        pending: deque[list[int]] = deque(list(range(i, min(i + chunk, n))) for i in range(0, n, chunk))
        try:
            self._ensure_workers()
            while tally.done < n:
                now = time.monotonic()
                for w in list(self._live):
                    # a second chunk goes to a busy worker ahead of its results (no idle round trip between chunks)
                    # when it is small enough never to block on a full pipe while the worker is busy
                    while pending and (not w.current or (len(w.current) <= chunk
                                                         and _text_size(pending[0], completions, golds) < _PREFETCH_CHARS)):
                        idxs = pending.popleft()
                        try:
                            w.conn.send((grader, [(i, completions[i], golds[i]) for i in idxs]))
                        except (BrokenPipeError, OSError):  # the worker is gone: replace it
                            pending.appendleft(idxs)
                            self._retire(w, kill=True)
                            self._spawn()
                            self.respawns += 1
                            break
                        if not w.current:
                            w.since = now
                        w.current.extend(idxs)
                busy = [w for w in self._live if w.current]
                if not busy:
                    self._ensure_workers()  # every worker was retired: start fresh ones
                    continue
                deadline = min(w.since for w in busy) + timeout_s
                waitables = [w.conn for w in busy] + [w.proc.sentinel for w in busy]
                ready = set(wait(waitables, timeout=max(0.0, deadline - time.monotonic())))
                replace = 0
                for w in busy:
                    dead = False
                    if w.conn in ready or w.proc.sentinel in ready:
                        try:
                            while w.current and w.conn.poll():
                                idx, status, value = w.conn.recv()
                                head = w.current.popleft()
                                if head != idx:  # cannot happen: results come back in dispatch order
                                    raise RuntimeError(f"grading worker answered {idx}, expected {head}")
                                tally.record(idx, status, value)
                                w.since = time.monotonic()
                        except (EOFError, OSError):
                            dead = True
                        if not dead and w.current and not w.proc.is_alive():
                            dead = True
                    if dead and w.current:
                        tally.record(w.current.popleft(), "error", "worker process died")
                        if w.current:
                            pending.appendleft(list(w.current))
                        w.current.clear()
                        self._retire(w, kill=True)
                        replace += 1
                    elif w.current and time.monotonic() - w.since > timeout_s:
                        tally.record(w.current.popleft(), "timeout", None)
                        if w.current:
                            pending.appendleft(list(w.current))
                        w.current.clear()
                        self._retire(w, kill=True)
                        replace += 1
                for _ in range(replace):
                    self._spawn()
                    self.respawns += 1
        except BaseException:
            # interrupted (KeyboardInterrupt) or a bug: never leave half-busy workers behind
            _kill_workers(self._live)
            raise
        finally:
            tally.close()
        return tally.report(time.perf_counter() - t0, in_process=False)


def _text_size(idxs: list[int], completions: Sequence[str], golds: Sequence[str]) -> int:
    return sum(len(completions[i]) + len(golds[i]) for i in idxs)


class _Tally:
    def __init__(self, n: int, progress: bool):
        self.scores = [0.0] * n
        self.timeout_indices: list[int] = []
        self.error_indices: list[int] = []
        self.error_messages: list[str] = []
        self.done = 0
        self._bar = None
        if progress and n:
            from rich.console import Console  # noqa: PLC0415
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

            self._bar = Progress(
                TextColumn("grading"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[extra]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("grading", total=n, extra="")

    def record(self, idx: int, status: str, value: Any) -> None:
        if status == "ok":
            self.scores[idx] = value
        elif status == "timeout":
            self.scores[idx] = 0.0
            self.timeout_indices.append(idx)
        else:
            self.scores[idx] = 0.0
            self.error_indices.append(idx)
            if len(self.error_messages) < 20:
                self.error_messages.append(f"{idx}: {value}")
        self.done += 1
        if self._bar is not None:
            extra = f"timeouts {len(self.timeout_indices)} errors {len(self.error_indices)}"
            self._bar.update(self._task, advance=1, extra=extra)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def report(self, seconds: float, in_process: bool) -> GradeReport:
        return GradeReport(
            scores=self.scores,
            timeouts=len(self.timeout_indices),
            errors=len(self.error_indices),
            seconds=seconds,
            timeout_indices=sorted(self.timeout_indices),
            error_indices=sorted(self.error_indices),
            error_messages=self.error_messages,
            in_process=in_process,
        )


def _check_lengths(completions: Sequence[str], golds: Sequence[str]) -> int:
    if len(completions) != len(golds):
        raise ValueError(f"{len(completions)} completions but {len(golds)} golds")
    return len(completions)


def _grade_in_process(grader, completions, golds, timeout_s: float, progress: bool) -> GradeReport:
    t0 = time.perf_counter()
    n = len(completions)
    if getattr(grader, "self_timed", False):
        grader = _with_budget(grader, timeout_s)
    tally = _Tally(n, progress)
    try:
        for i in range(n):
            status, value = _grade_one(grader, completions[i], golds[i])
            tally.record(i, status, value)
    finally:
        tally.close()
    return tally.report(time.perf_counter() - t0, in_process=True)


def _use_in_process(grader: Any, n: int) -> bool:
    if getattr(grader, "pure", False):
        return True
    return (
        n < IN_PROCESS_BELOW
        and getattr(grader, "self_timed", False)
        and threading.current_thread() is threading.main_thread()
    )


def grade_many(
    grader: Any,
    completions: list[str],
    golds: list[str],
    *,
    timeout_s: float = 5.0,
    workers: int = 2,
    progress: bool = False,
    pool: GradingPool | None = None,
    in_process: bool | None = None,
) -> GradeReport:
    """Score ``completions[i]`` against ``golds[i]`` with ``grader``, at most ~``timeout_s`` seconds per answer.

    Timeouts and grader exceptions score 0 and are counted (``report.timeouts`` / ``report.errors``).
    ``pool``: a :class:`GradingPool` to reuse (else a temporary one with ``workers`` processes is created and
    closed). ``in_process``: None = automatic (pure graders, and tiny inputs of self-timed graders in the main
    thread, are graded here without a pool); True forces in-process grading (only the grader's own time limit
    applies); False forces the pool. ``progress``: a rich progress bar on stderr.
    """
    n = _check_lengths(completions, golds)
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    if n == 0:
        return GradeReport(scores=[], timeouts=0, errors=0, seconds=0.0, in_process=True)
    if in_process is None and getattr(grader, "quick_score", None) is not None:
        return _grade_quick_first(grader, completions, golds, timeout_s, workers, progress, pool)
    return _grade_all(grader, completions, golds, timeout_s, workers, progress, pool, in_process)


def _grade_all(grader, completions, golds, timeout_s, workers, progress, pool, in_process) -> GradeReport:
    n = len(completions)
    if in_process is None:
        in_process = _use_in_process(grader, n)
    if in_process:
        return _grade_in_process(grader, completions, golds, float(timeout_s), progress)
    if pool is not None:
        return pool.grade(grader, completions, golds, timeout_s=timeout_s, progress=progress)
    with GradingPool(workers=min(workers, n)) as tmp:
        return tmp.grade(grader, completions, golds, timeout_s=timeout_s, progress=progress)


def _grade_quick_first(grader, completions, golds, timeout_s, workers, progress, pool) -> GradeReport:
    """Decide what ``grader.quick_score`` can in-process; grade only the rest the normal way."""
    t0 = time.perf_counter()
    scores: list[float | None] = []
    for c, g in zip(completions, golds):
        try:
            scores.append(grader.quick_score(c, g))
        except Exception:  # noqa: BLE001 - let the full grader (and its error accounting) handle it
            scores.append(None)
    rest = [i for i, s in enumerate(scores) if s is None]
    if not rest:
        return GradeReport(scores=scores, timeouts=0, errors=0, seconds=time.perf_counter() - t0, in_process=True)  # type: ignore[arg-type]
    sub = _grade_all(
        grader, [completions[i] for i in rest], [golds[i] for i in rest], timeout_s, workers, progress, pool, None
    )
    for j, i in enumerate(rest):
        scores[i] = sub.scores[j]
    return GradeReport(
        scores=scores,  # type: ignore[arg-type]
        timeouts=sub.timeouts,
        errors=sub.errors,
        seconds=time.perf_counter() - t0,
        timeout_indices=[rest[j] for j in sub.timeout_indices],
        error_indices=[rest[j] for j in sub.error_indices],
        error_messages=[f"{rest[int(m.split(':', 1)[0])]}:{m.split(':', 1)[1]}" for m in sub.error_messages],
        in_process=sub.in_process,
    )
