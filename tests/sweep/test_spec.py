"""Sweep specs: TOML parsing, gin literals, expansion counts, errors (zip lengths, unknown keys), stable ids."""

from __future__ import annotations

import textwrap

import pytest

from igpo_kit.errors import ConfigError
from igpo_kit.sweep.spec import (expand, gin_literal, inline_spec, is_seed_key, load_spec, parse_axis, short_keys,
                                 split_values)

SPEC = """
base = "tiny/igpo.gin"
bindings = ["entry.rl.max_steps = 2"]

[product]
SEED = [0, 1, 2]
"entry.rl.learning_rate" = [1e-3, 1e-4]

[[zip]]
"entry.rl.hint_ratio_low" = [0.2, 0.4]
"entry.rl.hint_ratio_high" = [0.6, 0.8]

[[arm]]
name = "igpo"

[[arm]]
name = "grpo"
bindings = ["entry.rl.replacement_policy = @replacement_policy.none()"]
"""


def write(tmp_path, text, name="spec.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_expansion_counts_and_bindings(tmp_path):
    spec = load_spec(write(tmp_path, SPEC))
    assert spec.name == "spec" and spec.base == "tiny/igpo.gin"
    cells = expand(spec)
    assert len(cells) == 2 * (3 * 2) * 2  # arms x product x zip
    assert len({c.id for c in cells}) == len(cells)
    assert [c.arm for c in cells].count("grpo") == 12
    c = cells[-1]
    assert c.id.startswith("grpo-") and len(c.id) == len("grpo-") + 8
    # common bindings, then the arm's, then the axis values (which win)
    assert c.bindings[0] == "entry.rl.max_steps = 2"
    assert c.bindings[1] == "entry.rl.replacement_policy = @replacement_policy.none()"
    assert c.bindings[2:] == ["SEED = 2", "entry.rl.learning_rate = 0.0001", "entry.rl.hint_ratio_low = 0.4",
                              "entry.rl.hint_ratio_high = 0.8"]
    assert c.values == {"SEED": 2, "entry.rl.learning_rate": 1e-4, "entry.rl.hint_ratio_low": 0.4,
                        "entry.rl.hint_ratio_high": 0.8}
    # zipped values co-vary: never low=0.2 with high=0.8
    assert not [x for x in cells if x.values["entry.rl.hint_ratio_low"] == 0.2
                and x.values["entry.rl.hint_ratio_high"] == 0.8]


def test_no_arms_no_zip_and_arm_local_axes(tmp_path):
    spec = load_spec(write(tmp_path, """
        base = "tiny/igpo.gin"
        [product]
        SEED = [0, 1]
    """))
    cells = expand(spec)
    assert len(cells) == 2 and all(c.id.startswith("igpo-") and c.arm is None for c in cells)
    spec = load_spec(write(tmp_path, """
        base = "tiny/igpo.gin"
        [product]
        SEED = [0, 1]
        [[arm]]
        name = "mixed"
        bindings = ["entry.rl.trace_corruption = @corruption.mixed()", "corruption.mixed.rate = %RHO"]
        [arm.product]
        RHO = [0.0, 0.1, 0.2]
        [[arm]]
        name = "grpo"
    """))
    cells = expand(spec)
    assert len(cells) == 3 * 2 + 2
    assert sum(1 for c in cells if "RHO" in c.keys) == 6 and spec.axis_keys == ["SEED", "RHO"]


def test_gin_literals():
    assert gin_literal("gsm8k") == "'gsm8k'"
    assert gin_literal("@replacement_policy.none()") == "@replacement_policy.none()"
    assert gin_literal("%MODEL_PATH") == "%MODEL_PATH"
    assert gin_literal(True) == "True" and gin_literal(3) == "3" and gin_literal(5e-7) == "5e-07"
    assert gin_literal([1, "a", 0.5]) == "[1, 'a', 0.5]"
    assert gin_literal({"k": [1, 2]}) == "{'k': [1, 2]}"
    with pytest.raises(ConfigError):
        gin_literal(float("nan"))


def test_zip_length_mismatch(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_spec(write(tmp_path, """
            base = "tiny/igpo.gin"
            [[zip]]
            "entry.rl.learning_rate" = [1e-3, 1e-4, 1e-5]
            "entry.rl.warmup_steps" = [1, 2]
        """))
    msg = str(e.value)
    assert "zip[0]" in msg and "equal lengths" in msg and "entry.rl.learning_rate (3)" in msg
    assert "entry.rl.warmup_steps (2)" in msg


def test_unknown_keys_named_with_close_matches(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_spec(write(tmp_path, """
            base = "tiny/igpo.gin"
            baseline = "grpo"
            [prodcut]
            SEED = [0, 1]
            [[arm]]
            name = "grpo"
            binding = ["entry.rl.replacement_policy = @replacement_policy.none()"]
        """))
    lines = e.value.lines
    assert any("unknown key 'prodcut'" in x and "did you mean product" in x for x in lines), lines
    assert any("arm[0]" in x and "unknown key 'binding'" in x and "did you mean bindings" in x for x in lines), lines


def test_other_spec_errors_all_reported(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_spec(write(tmp_path, """
            base = "tiny/igpo_typo.gin"
            [product]
            SEED = 0
            "entry.rl.max_steps" = []
            [[arm]]
            name = "a"
            [[arm]]
            name = "a"
            [[arm]]
            bindings = []
        """))
    text = "\n".join(e.value.lines)
    assert "recipe not found: tiny/igpo_typo.gin" in text and "tiny/igpo.gin" in text.split("did you mean ", 1)[1]
    assert "SEED: expected a list" in text and "empty list" in text
    assert "duplicate arm name" in text and "'name' is required" in text
    with pytest.raises(ConfigError, match="TOML syntax error"):
        load_spec(write(tmp_path, "base = \n"))
    with pytest.raises(ConfigError, match="'base'"):
        load_spec(write(tmp_path, "[product]\nSEED = [0]\n"))
    with pytest.raises(ConfigError, match="more than one axis"):
        load_spec(write(tmp_path, """
            base = "tiny/igpo.gin"
            [product]
            SEED = [0, 1]
            [[zip]]
            SEED = [2, 3]
        """))


def test_identical_cells_rejected(tmp_path):
    with pytest.raises(ConfigError, match="identical"):
        expand(load_spec(write(tmp_path, """
            base = "tiny/igpo.gin"
            [product]
            SEED = [0, 0]
        """)))


def test_stable_ids(tmp_path):
    ids = [c.id for c in expand(load_spec(write(tmp_path, SPEC)))]
    again = [c.id for c in expand(load_spec(write(tmp_path, SPEC, name="other_name.toml")))]
    assert ids == again  # content, not the file name, decides
    # the same cell written differently (binding spacing, key order) keeps its id
    a = load_spec(write(tmp_path, """
        base = "tiny/igpo.gin"
        bindings = ["entry.rl.max_steps=2", "entry.rl.inner_iters = 1"]
        [product]
        SEED = [0]
    """))
    b = load_spec(write(tmp_path, """
        base = "tiny/igpo.gin"
        bindings = ["entry.rl.inner_iters = 1", "entry.rl.max_steps = 2"]
        [product]
        SEED = [0]
    """, name="b.toml"))
    assert expand(a)[0].id == expand(b)[0].id
    # a changed value gives a new id to that cell only
    changed = [c.id for c in expand(load_spec(write(tmp_path, SPEC.replace("[0, 1, 2]", "[0, 1, 5]"))))]
    assert len(set(changed) - set(ids)) == len(ids) // 3
    assert len(set(changed) & set(ids)) == 2 * len(ids) // 3
    # a changed base recipe changes every id
    base2 = tmp_path / "mine.gin"
    base2.write_text("include 'tiny/igpo.gin'\n")
    moved = [c.id for c in expand(load_spec(write(tmp_path, SPEC.replace('"tiny/igpo.gin"', '"mine.gin"'))))]
    assert not set(moved) & set(ids)


def test_inline_axes():
    assert split_values("1,2, [3, 4],'a,b',(5,6)") == ["1", "2", "[3, 4]", "'a,b'", "(5,6)"]
    ax = parse_axis("entry.rl.hint_ratio_high=0.6,1.0")
    assert ax.key == "entry.rl.hint_ratio_high" and ax.literals == ["0.6", "1.0"] and ax.values == [0.6, 1.0]
    assert parse_axis("x.policy=@replacement_policy.none(),@replacement_policy.igpo()").values[0] == \
        "@replacement_policy.none()"
    for bad in ("SEED", "SEED=", "=1,2", "SEED=1,,2"):
        with pytest.raises(ConfigError):
            parse_axis(bad)
    spec = inline_spec("tiny/igpo.gin", ["SEED=0,1,2", "entry.rl.max_steps=2,3"], bindings=["entry.rl.inner_iters=1"])
    cells = expand(spec)
    assert len(cells) == 6 and spec.name.startswith("tiny_igpo-")
    assert inline_spec("tiny/igpo.gin", ["SEED=0,1,2", "entry.rl.max_steps=2,3"],
                       bindings=["entry.rl.inner_iters=1"]).name == spec.name
    with pytest.raises(ConfigError, match="more than once"):
        inline_spec("tiny/igpo.gin", ["SEED=0", "SEED=1"])


def test_short_keys_and_seed_keys():
    s = short_keys(["entropy_filter.top_fraction.entropy_top_fraction", "SEED", "corruption.number.rate",
                    "corruption.logic.rate", "gsm8k/sampler.low_confidence.temperature"])
    assert s["entropy_filter.top_fraction.entropy_top_fraction"] == "entropy_top_fraction"
    assert s["corruption.number.rate"] == "number.rate" and s["SEED"] == "SEED"
    assert s["gsm8k/sampler.low_confidence.temperature"] == "temperature"
    assert is_seed_key("SEED") and is_seed_key("entry.rl.seed") and not is_seed_key("entry.rl.max_steps")
