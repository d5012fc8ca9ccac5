"""Progress lines and bars: elapsed and time left, plain periodic lines when stderr is not a terminal."""

import io
from pathlib import Path

import pytest
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


# -- the libraries' own tqdm bars (transformers "Writing model shards", hub downloads, datasets "Map")

def _library_bars_enabled() -> dict:
    import datasets
    import huggingface_hub.utils
    import transformers.utils.logging

    return {"transformers": transformers.utils.logging.is_progress_bar_enabled(),
            "huggingface_hub": not huggingface_hub.utils.are_progress_bars_disabled(),
            "datasets": datasets.is_progress_bar_enabled()}


def _set_library_bars(on: dict) -> None:
    import datasets
    import huggingface_hub.utils
    import transformers.utils.logging

    (transformers.utils.logging.enable_progress_bar if on["transformers"]
     else transformers.utils.logging.disable_progress_bar)()
    (huggingface_hub.utils.enable_progress_bars if on["huggingface_hub"] else huggingface_hub.utils.disable_progress_bars)()
    (datasets.enable_progress_bars if on["datasets"] else datasets.disable_progress_bars)()


@pytest.fixture
def restore_library_bars():
    """Every library's bars on for the test (the session may have turned some off), as they were afterwards."""
    before = _library_bars_enabled()
    _set_library_bars(dict.fromkeys(before, True))
    yield
    _set_library_bars(before)


def test_library_bars_off_in_a_log_kept_on_a_terminal(monkeypatch, restore_library_bars):
    import io

    from rich.console import Console

    from igpo_kit.progress import quiet_library_bars

    monkeypatch.delenv("IGPO_KIT_PROGRESS", raising=False)
    assert quiet_library_bars(Console(file=io.StringIO(), force_terminal=True)) is False
    on = _library_bars_enabled()
    assert on["transformers"] and on["datasets"], on  # (the hub's follow $HF_HUB_DISABLE_PROGRESS_BARS, set in tests)
    assert quiet_library_bars(Console(file=io.StringIO())) is True  # not a terminal: a log or a pipe
    assert not any(_library_bars_enabled().values()), _library_bars_enabled()


def test_plain_mode_turns_them_off_on_a_terminal_too(monkeypatch, restore_library_bars):
    import io

    from rich.console import Console

    from igpo_kit.progress import quiet_library_bars

    monkeypatch.setenv("IGPO_KIT_PROGRESS", "plain")
    assert quiet_library_bars(Console(file=io.StringIO(), force_terminal=True)) is True
    assert not any(_library_bars_enabled().values())


def test_a_logged_sft_run_has_no_tqdm_fragments(tmp_path):
    """A job whose stderr is a file (a Slurm log): the SFT's checkpoints save with save_pretrained, whose
    "Writing model shards" bar used to land in the log as carriage-return fragments."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for var in ("IGPO_KIT_PROGRESS", "HF_HUB_DISABLE_PROGRESS_BARS"):  # the defaults a user has
        env.pop(var, None)
    log = tmp_path / "job.log"
    with log.open("w") as f:
        r = subprocess.run([sys.executable, "-m", "igpo_kit.cli.main", "run", "tiny/sft.gin", "--runs-dir",
                            str(tmp_path / "runs"), "-b", "entry.sft.max_steps = 2", "-b", "entry.sft.checkpoint_every = 1"],
                           cwd=repo, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=300)
    text = log.read_text()
    assert r.returncode == 0, text[-3000:]
    assert (next((tmp_path / "runs" / "sft").iterdir()) / "model" / "config.json").is_file()
    assert "Writing model shards" not in text and "\r" not in text, text[-2000:]
