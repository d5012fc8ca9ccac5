"""The README stays true: its commands exist, its Python examples run, the recipes it names are shipped."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_the_two_commands_exist_and_ci_runs_the_test_command():
    cmds = re.findall(r"^bash (scripts/\S+)", README, flags=re.M)
    assert cmds[:2] == ["scripts/quickstart.sh", "scripts/test.sh"]
    for c in cmds:
        assert (ROOT / c).is_file(), c
    assert "bash scripts/test.sh" in (ROOT / ".ci/run").read_text()
    assert "recipes/quickstart.gin" in (ROOT / "scripts/quickstart.sh").read_text()


def test_named_recipes_and_docs_exist():
    table = "\n".join(line for line in README.splitlines() if line.startswith("| `"))
    names = re.findall(r"`((?:[\w]+/)*[\w]+\.gin)`", table)
    assert "quickstart.gin" in names and "igpo_full.gin" in names
    for name in names:
        assert (ROOT / "recipes" / name).is_file(), name
    for link in re.findall(r"\]\(([\w/.-]+\.md)\)", README):
        assert (ROOT / link).is_file(), link


def test_python_example_runs(tmp_path):
    code = _blocks("python")[0]
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith(("0.0", "1.0"))  # the completion, then its math-verify score


def test_plugin_example_registers(tmp_path):
    code = next(b for b in _blocks("python") if "igpo_kit.register" in b)
    plugin = tmp_path / "my_graders.py"
    plugin.write_text(code)
    r = subprocess.run([sys.executable, "-m", "igpo_kit.cli.main", "describe", "grader", "last_number_exact",
                        "--plugin", str(plugin)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "last_number_exact" in r.stdout and "correct_value" in r.stdout
