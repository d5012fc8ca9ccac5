import pytest

from igpo_kit.atomic import write_atomic


def test_write_atomic_replaces_and_leaves_no_temp_file(tmp_path):
    p = tmp_path / "run.json"
    assert write_atomic(p, "one\n") == p and p.read_text() == "one\n"
    write_atomic(p, "two ü\n")
    assert p.read_text(encoding="utf-8") == "two ü\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["run.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp_file(tmp_path):
    p = tmp_path / "latest"
    write_atomic(p, "step_1\n")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(p, "step_2 \ud800\n")  # a lone surrogate cannot be encoded: fails mid-write
    assert p.read_text() == "step_1\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["latest"]

