"""Ship the data folders recipes/ registry/ slurm/ cli/ inside the wheel as igpo_kit/_<name>/.

They are data, never top-level packages (``import recipes`` must not work after installing igpo-kit).
Metadata lives in pyproject.toml; this file only adds that copy step to build_py.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_FOLDERS = ("recipes", "registry", "slurm", "cli")


class BuildWithData(build_py):
    def run(self):
        super().run()
        root = Path(__file__).resolve().parent
        for name in DATA_FOLDERS:
            src = root / name
            if src.is_dir():
                dst = Path(self.build_lib) / "igpo_kit" / f"_{name}"
                shutil.rmtree(dst, ignore_errors=True)
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithData})
