"""The layers of docs/ARCHITECTURE.md, enforced: import-linter's contracts in pyproject.toml hold for igpo_kit,
and they do break on an upward import or on a cycle (checked on a copy of the package with one bad import)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"


def _lint_copy(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess:
    """Run the project's contracts on a copy of igpo_kit where ``module`` (a path) gains ``line``."""
    shutil.copytree(ROOT / "igpo_kit", tmp_path / "igpo_kit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PYPROJECT, tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}\n")
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def test_contracts_hold():
    assert lint_imports(config_filename=str(PYPROJECT), no_cache=True) == 0


def test_an_upward_import_breaks_the_layers(tmp_path):
    r = _lint_copy(tmp_path, "igpo_kit/report/tables.py", "from igpo_kit.sweep.spec import short_keys")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "igpo_kit layers (top to bottom) BROKEN" in r.stdout
    assert "igpo_kit.report.tables -> igpo_kit.sweep.spec" in r.stdout


def test_a_cycle_inside_a_layer_breaks_the_acyclic_contract(tmp_path):
    # rl and sft share a layer (sft uses rl.distributed); rl importing sft back closes a cycle
    r = _lint_copy(tmp_path, "igpo_kit/rl/rollout.py", "from igpo_kit.sft import schedule")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "no import cycles between sibling modules or packages, at any depth BROKEN" in r.stdout
    assert "igpo_kit layers (top to bottom) KEPT" in r.stdout


def test_cli_commands_do_not_import_back_from_main(tmp_path):
    r = _lint_copy(tmp_path, "igpo_kit/cli/experiments.py", "from igpo_kit.cli.main import app as _app")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "cli: commands register on cli.app and never import back from cli.main BROKEN" in r.stdout
