"""The built wheel: only ``igpo_kit`` is importable; recipes/, registry/, slurm/, cli/ ship inside it as data.
An editable install of a checkout finds the top-level data folders. The build backend comes from pyproject.toml."""

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
    record = next(n for n in names if n.endswith(".dist-info/RECORD"))  # what pip installs (and uninstalls)
    paths = [ln.split(",")[0] for ln in zipfile.ZipFile(wheel).read(record).decode().splitlines() if ln]
    assert {p.split("/")[0] for p in paths} == {n.split("/")[0] for n in names}
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
    # -S: not the running venv's site-packages, whose editable install puts this checkout (and so its top-level
    # folders, as namespace packages) on sys.path: only the unpacked wheel is importable here
    r = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]


def test_editable_install_uses_the_checkout(tmp_path):
    """PEP 660: the editable wheel the build backend makes points at this checkout; assets are its folders."""
    r = subprocess.run([sys.executable, "-c", "import sys, hatchling.build as b; print(b.build_editable(sys.argv[1]))",
                        str(tmp_path / "dist")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    site = tmp_path / "site"
    zipfile.ZipFile(tmp_path / "dist" / r.stdout.split()[-1]).extractall(site)
    code = (
        "import site, sys; site.addsitedir(sys.argv[1])\n"
        "import igpo_kit, igpo_kit.assets as a, pathlib\n"
        "root = pathlib.Path(sys.argv[2])\n"
        "assert pathlib.Path(igpo_kit.__file__).parent == root / 'igpo_kit', igpo_kit.__file__\n"
        "assert a.path('recipes') == root / 'recipes' and a.resolve_recipe('tiny/igpo.gin').is_file()\n"
        "assert a.path('registry') == root / 'registry'\n"
    )
    env = {"PATH": "/usr/bin:/bin", "IGPO_KIT_DISABLE_PLUGIN_AUTOLOAD": "1"}
    r = subprocess.run([sys.executable, "-I", "-c", code, str(site), str(ROOT)], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
