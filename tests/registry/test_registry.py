"""Registry: catalog entries import, unknown names suggest close matches, duplicates name both origins, plugins."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from igpo_kit import KINDS
from igpo_kit.registry import DuplicateComponent, Entry, UnknownComponent, load_plugin, register, registry


@pytest.mark.parametrize("kind", KINDS)
def test_every_catalog_entry_imports_and_is_callable(kind):
    for entry in registry(kind).entries():
        if entry.origin.startswith("built-in"):
            assert callable(entry.load()), f"{kind}.{entry.name}"


def test_unknown_name_names_kind_and_close_matches():
    with pytest.raises(UnknownComponent) as exc:
        registry("sampler").get("low_confidense")
    msg = str(exc.value)
    assert "unknown sampler 'low_confidense'" in msg and "did you mean 'low_confidence'" in msg
    assert "igpo-kit ls components --kind sampler" in msg


def test_unknown_kind():
    with pytest.raises(UnknownComponent, match="did you mean 'grader'"):
        registry("grader_")


def test_duplicate_names_both_origins():
    reg = registry("grader")

    @register("grader", "dup_test_grader")
    def first():
        return None

    try:
        with pytest.raises(DuplicateComponent) as exc:
            reg.add(Entry(kind="grader", name="dup_test_grader", target="x.y:z", origin="plugin other"))
        assert "test_registry.py" in str(exc.value) and "plugin other" in str(exc.value)
    finally:
        reg._remove("dup_test_grader")


def test_listing_components_imports_no_torch():
    code = textwrap.dedent("""
        import sys
        from igpo_kit.registry import registry
        from igpo_kit import KINDS
        n = sum(len(registry(k).names()) for k in KINDS)
        assert n > 10, n
        assert 'torch' not in sys.modules, 'torch imported'
        print('ok', n)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_plugin_from_file(tmp_path):
    f = tmp_path / "my_components.py"
    f.write_text(textwrap.dedent("""
        import igpo_kit

        @igpo_kit.register("advantage_estimator", "file_plugin_adv")
        def file_plugin_adv(scale: float = 2.0):
            return lambda r: scale * (r - r.mean(dim=1, keepdim=True))
    """))
    try:
        load_plugin(str(f))
        e = registry("advantage_estimator").entry("file_plugin_adv")
        assert "my_components.py" in e.origin
        assert e.load()(scale=3.0) is not None
    finally:
        registry("advantage_estimator")._remove("file_plugin_adv")
