"""registry/{grader,dataset,prompt}.toml: every target resolves to a factory whose arguments gin can bind."""

import importlib
import inspect
import tomllib
import typing
from pathlib import Path

import pytest

REGISTRY = Path(__file__).resolve().parents[2] / "registry"
EXPECTED = {
    "grader": {"math", "math_verify", "gsm8k", "official", "d1", "format", "xmlcount"},
    "dataset": {"gsm8k", "math500", "amc", "minerva", "metamathqa", "openr1_math", "jsonl"},
    "prompt": {"llada_reasoning", "d1_eval", "plain"},
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_catalog_entries(kind):
    table = tomllib.loads((REGISTRY / f"{kind}.toml").read_text())
    assert EXPECTED[kind] <= set(table)  # other areas may add entries (e.g. dataset.arithmetic)
    for name in sorted(EXPECTED[kind]):
        spec = table[name]
        assert spec["summary"]
        module, _, attr = spec["target"].partition(":")
        factory = getattr(importlib.import_module(module), attr)
        hints = typing.get_type_hints(factory)
        for p in inspect.signature(factory).parameters.values():
            assert p.default is not inspect.Parameter.empty, f"{kind}.{name}: {p.name} has no default"
            assert p.name in hints, f"{kind}.{name}: {p.name} is not annotated"
        if kind != "dataset":  # dataset defaults point at the Hub
            obj = factory()
            if kind == "grader":
                assert obj.name == name and callable(obj.score)
            else:
                assert isinstance(obj.messages("Q?"), list)


def test_imports_are_light():
    import subprocess
    import sys

    code = (
        "import sys, igpo_kit.grading, igpo_kit.data, igpo_kit.data.datasets, igpo_kit.grading.pool;"
        "print(sorted(m for m in ('datasets', 'math_verify', 'sympy', 'torch', 'transformers', 'rich') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert out.stdout.strip() == "[]"
