"""The gin layer: recipes parse, errors are reported together with file/line and close matches."""

from __future__ import annotations

from pathlib import Path

import pytest

from igpo_kit import config as cfg
from igpo_kit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2] / "recipes"
RECIPES = sorted(p for p in ROOT.rglob("*.gin") if not p.name.startswith("_"))  # _*.gin: include fragments


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_recipe_validates(recipe):
    c = cfg.parse(recipe)
    assert c.job in ("evaluate", "rl", "sft", "quickstart", "rewrite")
    assert "from __gin__ import dynamic_registration" in c.text


def test_include_fragments_are_not_recipes():
    fragments = sorted(ROOT.rglob("_*.gin"))
    assert fragments and not set(cfg.recipe_names()) & {str(p.relative_to(ROOT)) for p in fragments}
    includers = [p for p in RECIPES if any(f"include '{f.relative_to(ROOT)}'" in p.read_text() for f in fragments)]
    assert includers  # every fragment is validated through the recipes that include it


def test_saved_config_text_round_trips():
    c = cfg.parse("tiny/eval.gin", bindings=["gsm8k/sampler.low_confidence.steps = 64"])
    again = cfg.parse(text=c.text)
    assert again.text == c.text and "steps = 64" in again.text


def _errors(**kw) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        cfg.parse(**kw)
    return exc.value.lines


def test_unknown_component_names_close_match(tmp_path):
    r = tmp_path / "r.gin"
    r.write_text((ROOT / "tiny" / "eval.gin").read_text().replace("@grader.math_verify()",
                                                                                    "@grader.math_verfy()"))
    (line,) = _errors(recipe=r)
    assert "unknown grader 'math_verfy'" in line and "math_verify" in line and "r.gin:" in line


def test_typo_binding_and_wrong_type_and_unused_macro_reported_together():
    lines = _errors(recipe="tiny/eval.gin", bindings=["gsm8k/sampler.low_confidence.stepz = 3",
                                                      "gsm8k/sampler.low_confidence.steps = 'many'"])
    assert any("stepz" in ln and "did you mean steps" in ln for ln in lines), lines
    lines = _errors(recipe="tiny/eval.gin", bindings=["gsm8k/sampler.low_confidence.steps = 'many'"])
    assert lines == ["gsm8k/sampler.low_confidence.steps = 'many': expected int, got str"] or \
        any("expected int, got str" in ln for ln in lines), lines


def test_unused_macro_is_an_error():
    lines = _errors(recipe="eval/llada_paper.gin", bindings=["AMC_TEMPERATUR = 0.1"])
    assert any("macro AMC_TEMPERATUR is defined but nothing uses it" in ln and "AMC_TEMPERATURE" in ln for ln in lines)


def test_missing_recipe():
    (line,) = _errors(recipe="tiny/evl.gin")
    assert "recipe not found: tiny/evl.gin" in line and "tiny/eval.gin" in line


def test_gin_syntax_error_has_file_and_line(tmp_path):
    r = tmp_path / "bad.gin"
    r.write_text("from __gin__ import dynamic_registration\nfrom igpo_kit import entry\nentry.evaluate.seed = (1,\n")
    (line,) = _errors(recipe=r)
    assert "bad.gin" in line


def test_no_job_configured(tmp_path):
    r = tmp_path / "nojob.gin"
    r.write_text("from __gin__ import dynamic_registration\nfrom igpo_kit.components import sampler\n"
                 "sampler.low_confidence.steps = 4\n")
    (line,) = _errors(recipe=r)
    assert "exactly one job" in line


def test_type_checker():
    from typing import Literal, Optional

    ok = cfg._type_ok
    assert ok(1, float) and not ok(True, int) and not ok("x", int)
    assert ok(None, Optional[int]) and ok([1, 2], list[int]) and not ok([1, "a"], list[int])
    assert ok("fast", Literal["fast", "exact"]) and not ok("slow", Literal["fast", "exact"])
    assert ok((1, 2), tuple[int, ...]) and ok([0.9, 0.99], tuple[float, float] | list[float])
