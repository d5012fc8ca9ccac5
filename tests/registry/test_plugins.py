"""The example plugin package (tests/plugin_example) found through its ``igpo_kit.plugins`` entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1] / "plugin_example"


@pytest.fixture
def plugin_env(tmp_path):
    """An environment where the example plugin is installed: its source plus a dist-info with the entry point."""
    dist = tmp_path / "site" / "igpo_kit_example_plugin-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: igpo-kit-example-plugin\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[igpo_kit.plugins]\nexample = igpo_kit_example_plugin\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), str(PLUGIN / "src"), env.get("PYTHONPATH", "")])
    env["IGPO_KIT_RUNS"] = str(tmp_path / "runs")
    return env


def _cli(env, *args):
    return subprocess.run([sys.executable, "-m", "igpo_kit.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_entry_point_plugin_is_listed_with_origin(plugin_env):
    r = _cli(plugin_env, "ls", "components", "--kind", "grader", "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert "example_exact" in rows
    assert "igpo-kit-example-plugin 0.1.0" in rows["example_exact"]["origin"]


def test_recipe_uses_plugin_grader(plugin_env, tmp_path):
    gen = tmp_path / "gens.jsonl"
    gen.write_text("".join(json.dumps({"completion": c, "gold": g}) + "\n"
                           for c, g in [("so 3+4=7", "7"), ("it is 12", "13"), ("= 5", "5")]))
    r = _cli(plugin_env, "grade", str(gen), "--grader", "example_exact", "--json", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["correct"] == 2

    recipe = tmp_path / "eval_plugin.gin"
    recipe.write_text((Path(__file__).resolve().parents[2] / "recipes/tiny/eval.gin").read_text()
                      .replace("@grader.math_verify()", "@grader.example_exact()")
                      .replace("'recipes/data/gsm8k_sample.jsonl'", "'recipes/data/gsm8k_sample.jsonl'")
                      .replace("limit = 4", "limit = 2"))
    r = _cli(plugin_env, "run", str(recipe), "--json")
    assert r.returncode == 0, r.stderr
    run_dir = Path(json.loads(r.stdout)["run_dir"])
    assert "example_exact" in (run_dir / "config.gin").read_text()
    assert "igpo_kit_example_plugin" in (run_dir / "operative_config.gin").read_text() or \
        "example_exact" in (run_dir / "operative_config.gin").read_text()


def test_disable_autoload(plugin_env):
    env = {**plugin_env, "IGPO_KIT_DISABLE_PLUGIN_AUTOLOAD": "1"}
    r = _cli(env, "describe", "grader", "example_exact")
    assert r.returncode == 2
    assert "unknown grader 'example_exact'" in r.stderr
    r = _cli(env, "describe", "grader", "example_exact", "--plugin", "igpo_kit_example_plugin")
    assert r.returncode == 0, r.stderr
