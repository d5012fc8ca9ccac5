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
    env.pop("IGPO_KIT_DISABLE_PLUGIN_AUTOLOAD", None)  # tests/conftest.py turns autoload off for every other test
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


README_GRADERS = '''
import igpo_kit


@igpo_kit.register("grader", "last_number_exact")
def last_number_exact(correct_value: float = 1.0):
    """An installed copy of the README's example grader."""
    return None
'''


def test_installed_plugin_does_not_change_the_tests(tmp_path):
    """A user who installed the README's example plugin (entry point registering ``last_number_exact``) still gets
    a passing tests/docs/test_readme.py: the suite runs with entry-point autoload off (tests/conftest.py)."""
    site = tmp_path / "site"
    (site / "my_pkg").mkdir(parents=True)
    (site / "my_pkg" / "__init__.py").write_text("")
    (site / "my_pkg" / "graders.py").write_text(README_GRADERS)
    dist = site / "my_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[igpo_kit.plugins]\nmy_pkg = my_pkg.graders\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    readme_test = Path(__file__).resolve().parents[1] / "docs" / "test_readme.py"
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:randomly",
                        f"{readme_test}::test_plugin_example_registers"], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert os.environ.get("IGPO_KIT_DISABLE_PLUGIN_AUTOLOAD") == "1"
    # and the same installed plugin IS loaded where autoload is on (what a user gets)
    env.pop("IGPO_KIT_DISABLE_PLUGIN_AUTOLOAD")
    r = _cli(env, "ls", "components", "--kind", "grader", "--json")
    assert r.returncode == 0, r.stderr
    assert "last_number_exact" in {row["name"] for row in json.loads(r.stdout)}


@pytest.fixture
def my_pkg(tmp_path):
    """The README's plugin layout: ``proj/my_pkg/graders.py``."""
    pkg = tmp_path / "proj" / "my_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "graders.py").write_text(README_GRADERS)
    return pkg


def _console_script(cwd, *args):
    """``igpo-kit ARGS`` as the console script runs it: the current folder is NOT on sys.path (unlike python -m)."""
    code = "import sys; sys.path = [p for p in sys.path if p not in ('', '.')]; from igpo_kit.cli.main import main; main()"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_plugin_module_from_the_folder_that_contains_it(my_pkg):
    r = _console_script(my_pkg.parent, "describe", "grader", "last_number_exact", "--plugin", "my_pkg.graders")
    assert r.returncode == 0, r.stderr
    assert "last_number_exact" in r.stdout


def test_plugin_module_not_found_suggests_the_fix(my_pkg, tmp_path):
    r = _console_script(my_pkg, "describe", "grader", "last_number_exact", "--plugin", "my_pkg.graders")
    assert r.returncode == 2
    msg = " ".join(r.stderr.split())
    assert "No module named 'my_pkg'" in msg
    assert f"my_pkg is in {my_pkg.parent}: run from there (cd {my_pkg.parent}), or set PYTHONPATH={my_pkg.parent}" in msg
    assert "pip install -e" in msg and f"--plugin {my_pkg / 'graders.py'}" in msg
    r = _console_script(tmp_path, "describe", "grader", "x", "--plugin", "nowhere_pkg.graders")
    assert r.returncode == 2
    msg = " ".join(r.stderr.split())
    assert "No module named 'nowhere_pkg'" in msg and "PYTHONPATH" in msg and "pip install -e" in msg
