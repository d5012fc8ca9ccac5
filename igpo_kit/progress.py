"""Progress of long phases (SFT steps, RL steps, rollout batches, evaluation, sweep cells) with time left, on stderr.

* On a terminal: rich progress bars (what, bar, done/total, elapsed, time left, a status such as the loss) at the
  bottom of the screen; log lines printed meanwhile scroll above them. Nested phases (a sweep cell's RL steps inside
  the sweep's cells) share one display; a finished phase's bar goes away.
* Elsewhere (a Slurm log, a pipe, ``IGPO_KIT_PROGRESS=plain``): a plain line at most every
  ``IGPO_KIT_PROGRESS_EVERY`` seconds (default 30) and one at the end, e.g.
  ``progress: sft steps 120/2000 (6%)  elapsed 1m02s  left ~16m15s  loss 1.234``, so the log stays readable.
  ``IGPO_KIT_PROGRESS=off`` prints nothing.

Time left is (total - done) / rate, the rate measured in this process (a resumed run's earlier steps do not count).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

__all__ = ["Progress", "format_seconds", "quiet_library_bars"]

EVERY_ENV = "IGPO_KIT_PROGRESS_EVERY"
MODE_ENV = "IGPO_KIT_PROGRESS"  # auto (default) | plain | off


def format_seconds(seconds: float) -> str:
    """``75 -> '1m15s'``, ``3725 -> '1h02m'``, ``9 -> '9s'``."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def quiet_library_bars(console: Any = None) -> bool:
    """Turn off the tqdm bars of transformers, huggingface_hub and datasets ("Writing model shards", "Loading weights",
    "Map") where this module prints plain lines instead: stderr is not a terminal (a Slurm log, a pipe) or
    ``IGPO_KIT_PROGRESS`` is ``plain`` / ``off``. In a log those bars are carriage-return fragments between the
    kit's lines (every SFT checkpoint wrote one). On a terminal they are left as they are.

    Args:
        console: a rich ``Console`` whose ``is_terminal`` decides (default: a new stderr console).
    Returns:
        True when the bars were turned off.
    """
    mode = os.environ.get(MODE_ENV, "auto")
    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    if mode == "auto" and console.is_terminal:
        return False
    import datasets
    import huggingface_hub.utils
    import transformers.utils.logging

    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()
    datasets.disable_progress_bars()
    return True


class _Shared:
    """The one rich ``Progress`` display that every bar on the terminal belongs to (rich allows one live display)."""

    display = None
    users = 0


def _columns():
    from rich.progress import (BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TextColumn("elapsed"),
            TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
            TextColumn("{task.fields[status]}", markup=False))


class Progress:
    """Progress of one phase of ``total`` units (a context manager; a no-op when ``enabled`` is False).

    Args:
        what: the phase, e.g. ``"sft steps"`` (printed as is, never as markup).
        total: units in the phase (None: unknown, no time left).
        done: units already done when this process starts (a resumed run).
        enabled: False on non-main processes.
        console: a rich ``Console`` (default: a new stderr console); its ``is_terminal`` picks bars or lines.
        every_s: seconds between plain lines (default ``$IGPO_KIT_PROGRESS_EVERY`` or 30).
        clock: the time source (``time.monotonic``; tests pass their own).
    """

    def __init__(self, what: str, total: int | None, *, done: int = 0, enabled: bool = True, console: Any = None,
                 every_s: float | None = None, clock: Callable[[], float] = time.monotonic):
        mode = os.environ.get(MODE_ENV, "auto")
        self.enabled = enabled and mode != "off"
        self.what, self.total, self.done, self.status = what, total, done, ""
        self._start_done = done
        self._clock = clock
        self.every_s = float(every_s if every_s is not None else os.environ.get(EVERY_ENV, 30))
        if console is None and self.enabled:
            from rich.console import Console

            console = Console(stderr=True)
        self.console = console
        self.bar = bool(self.enabled and mode != "plain" and console.is_terminal)
        self._task = None
        self._t0 = self._last = clock()

    # -- context
    def __enter__(self) -> "Progress":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close(ok=exc[0] is None)

    def start(self) -> "Progress":
        """Show the bar (terminal) and start the clock."""
        if not self.enabled:
            return self
        self._t0 = self._last = self._clock()
        if self.bar:
            if _Shared.display is None:
                from rich.progress import Progress as RichProgress

                _Shared.display = RichProgress(*_columns(), console=self.console, transient=True)
                _Shared.display.start()
            _Shared.users += 1
            self._task = _Shared.display.add_task(self.what, total=self.total, completed=self.done, status="")
        return self

    def close(self, ok: bool = True) -> None:
        """Remove the bar; when ``ok`` and units were done, print the final ``done in`` line."""
        if not self.enabled:
            return
        if self._task is not None and _Shared.display is not None:
            _Shared.display.remove_task(self._task)
            _Shared.users -= 1
            if _Shared.users <= 0:
                _Shared.display.stop()
                _Shared.display, _Shared.users = None, 0
        self._task = None
        if ok and self.done > self._start_done:
            self._emit(final=True)

    # -- updates
    def update(self, done: int | None = None, *, advance: int = 0, status: str | None = None) -> None:
        """Set ``done`` (or add ``advance``) and the status text; a plain line when ``every_s`` has passed."""
        if not self.enabled:
            return
        self.done = done if done is not None else self.done + advance
        if status is not None:
            self.status = status
        if self.bar:
            if _Shared.display is not None:
                _Shared.display.update(self._task, completed=self.done, status=self.status)
            return
        now = self._clock()
        if now - self._last >= self.every_s:
            self._last = now
            self._emit()

    def left_s(self) -> float | None:
        """Seconds left at this process's rate so far (None before the first unit, or without a total)."""
        elapsed = self._clock() - self._t0
        ran = self.done - self._start_done
        if self.total is None or ran <= 0 or elapsed <= 0:
            return None
        return max(0, self.total - self.done) * elapsed / ran

    def line(self, final: bool = False) -> str:
        """The plain progress line."""
        elapsed = format_seconds(self._clock() - self._t0)
        of = f"/{self.total} ({100 * self.done / self.total:.0f}%)" if self.total else ""
        if final:
            when = f"done in {elapsed}"
        else:
            left = self.left_s()
            when = f"elapsed {elapsed}  left ~{format_seconds(left)}" if left is not None else f"elapsed {elapsed}"
        return f"progress: {self.what} {self.done}{of}  {when}" + (f"  {self.status}" if self.status else "")

    def _emit(self, final: bool = False) -> None:
        self.console.print(self.line(final), markup=False, highlight=False, soft_wrap=True)
