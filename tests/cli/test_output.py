"""Output that pipes: whole names in terminal tables, tab-separated lines when stdout is not a terminal, and the
RL live line's timings printed as text (not swallowed as rich markup)."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

import igpo_kit.cli.app as cli_app
from igpo_kit.cli.main import app


def test_ls_components_piped_is_tab_separated_with_whole_names():
    r = CliRunner().invoke(app, ["ls", "components", "--kind", "replacement_policy"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "kind\tname\tsummary\torigin"
    assert any(line.startswith("replacement_policy\tresample\tGRPO + resample") for line in lines)
    assert "…" not in r.stdout and "┃" not in r.stdout


def test_terminal_tables_never_cut_names(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(cli_app, "out", Console(file=buf, force_terminal=True, width=60, color_system=None))
    t = Table(title="gsm8k")
    for c in ("method", "seeds", "pass@1", "delta", "steps", "reward"):
        t.add_column(c)
    t.add_row("entropy_top_fraction=0.2", "3", "41.2 ± 0.3", "+0.4", "1440", "0.61")
    t.add_row("entropy_top_fraction=0.8", "3", "40.8 ± 0.2", "+0.0", "1440", "0.60")
    cli_app.print_table(t)
    text = buf.getvalue()
    assert "entropy_top_fraction=0.2" in text and "entropy_top_fraction=0.8" in text and "…" not in text


def test_rl_live_line_shows_its_timings(tiny_lm_factory, tmp_path, capfd):
    from igpo_kit.components import (advantage_estimator, entropy_filter, grader, hint_chunker, logprob_estimator,
                                     loss, prompt, replacement_policy, sampler)
    from igpo_kit.data.examples import Example
    from igpo_kit.rl.trainer import Components, RLSettings, train_rl
    from igpo_kit.runs import Run

    comps = Components(
        sampler=sampler.low_confidence(gen_length=16, block_length=16, steps=4, temperature=1.0),
        grader=grader.math_verify(), prompt=prompt.plain(), hint_chunker=hint_chunker.paper(min_chunk_size=1,
                                                                                             max_chunk_size=2),
        replacement_policy=replacement_policy.igpo(), entropy_filter=entropy_filter.top_fraction(),
        advantage_estimator=advantage_estimator.mean_centered(), logprob_estimator=logprob_estimator.mean_field(),
        loss=loss.token_clip())
    examples = [Example(id=f"a/{i}", question=f"{i}+1?", answer=str(i + 1), trace=f"{i}+1={i + 1}") for i in range(2)]
    settings = RLSettings(group_size=2, prompts_per_step=1, max_steps=1, inner_iters=1, learning_rate=1e-3,
                          warmup_steps=0, grade_workers=1, checkpoint_every=1000)
    train_rl(tiny_lm_factory(), examples, comps, settings, Run(tmp_path / "run"))
    err = capfd.readouterr().err
    assert "[rollout " in err and "update " in err
