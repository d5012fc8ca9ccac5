"""Progress lines and bars: elapsed and time left, plain periodic lines when stderr is not a terminal."""

import io

from rich.console import Console

from igpo_kit.progress import Progress, format_seconds


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def _plain_console():
    return Console(file=io.StringIO(), force_terminal=False, width=200)


def test_plain_lines_with_time_left_at_most_every_interval():
    clock, console = Clock(), _plain_console()
    with Progress("sft steps", 100, console=console, every_s=30, clock=clock) as p:
        for step in range(1, 41):
            clock.t += 2.0  # 2 s per step
            p.update(step, status=f"loss {1 / step:.3f}")
    lines = console.file.getvalue().splitlines()
    # 80 s of work, a line every 30 s (steps 15 and 30), then the final line
    assert lines[0] == "progress: sft steps 15/100 (15%)  elapsed 30s  left ~2m50s  loss 0.067"
    assert lines[1] == "progress: sft steps 30/100 (30%)  elapsed 1m00s  left ~2m20s  loss 0.033"
    assert lines[2] == "progress: sft steps 40/100 (40%)  done in 1m20s  loss 0.025"
    assert len(lines) == 3


def test_resumed_run_rate_counts_only_this_process():
    clock = Clock()
    p = Progress("rl steps", 100, done=50, console=_plain_console(), every_s=1e9, clock=clock).start()
    clock.t += 10.0
    p.update(60)  # 10 steps in 10 s here; 40 left -> 40 s (not 50 done in 10 s -> 8 s)
    assert p.left_s() == 40.0
    assert "left ~40s" in p.line()


def test_terminal_shows_a_bar_with_elapsed_and_left_then_the_done_line():
    console = Console(file=io.StringIO(), force_terminal=True, width=160)
    with Progress("rl steps", 4, console=console) as p:
        assert p.bar
        for i in range(1, 5):
            p.update(i, status="reward [0.5]")
        from igpo_kit.progress import _Shared

        table = _Shared.display.make_tasks_table(_Shared.display.tasks)
        console.print(table)
    out = console.file.getvalue()
    assert "rl steps" in out and "4/4" in out and "elapsed" in out and "left" in out
    assert "reward [0.5]" in out  # never markup
    assert "progress: rl steps 4/4 (100%)  done in" in out


def test_nested_bars_share_one_display_and_off_prints_nothing(monkeypatch):
    console = Console(file=io.StringIO(), force_terminal=True, width=160)
    with Progress("sweep cells", 2, console=console) as outer:
        with Progress("rl steps", 3, console=console) as inner:
            inner.update(3)
        outer.update(1)
    monkeypatch.setenv("IGPO_KIT_PROGRESS", "off")
    quiet = _plain_console()
    with Progress("x", 2, console=quiet, every_s=0) as p:
        p.update(2)
    assert quiet.file.getvalue() == ""


def test_format_seconds():
    assert [format_seconds(s) for s in (9, 75, 3725)] == ["9s", "1m15s", "1h02m"]
