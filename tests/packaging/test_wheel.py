"""The built wheel: only ``igpo_kit`` is importable; recipes/, registry/, slurm/, cli/ ship inside it as data."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ("recipes", "registry", "slurm", "cli")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src") / "igpo-kit"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "dist", "runs", ".cache",
                                                             "*.egg-info", "__pycache__", "tests"))
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    (whl,) = out.glob("igpo_kit-*.whl")
    return whl


def test_only_igpo_kit_is_top_level(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"igpo_kit", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    top_level = next(n for n in names if n.endswith("top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["igpo_kit"]
    for folder in DATA:
        assert not any(n.startswith(f"{folder}/") for n in names), folder


def test_data_folders_ship_inside_the_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for rel in ("recipes/igpo_full.gin", "recipes/quickstart.gin", "recipes/tiny/igpo.gin", "registry/sampler.toml",
                "slurm/clusters/h100.toml", "slurm/local-cluster.sh", "cli/REFERENCE.md"):
        folder, _, rest = rel.partition("/")
        assert f"igpo_kit/_{folder}/{rest}" in names, rel
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "igpo-kit = igpo_kit.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_unpacked_wheel_finds_its_recipes_and_no_data_package(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import importlib.util, igpo_kit.assets as a, igpo_kit.registry as r\n"
        f"assert a.path('recipes') == __import__('pathlib').Path({str(site)!r}) / 'igpo_kit' / '_recipes'\n"
        "assert a.resolve_recipe('tiny/igpo.gin').is_file()\n"
        "assert 'low_confidence' in r.registry('sampler').names()\n"
        "for name in ('recipes', 'registry', 'cli', 'slurm'):\n"
        "    assert importlib.util.find_spec(name) is None, name\n"
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "IGPO_KIT_DISABLE_PLUGIN_AUTOLOAD": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
