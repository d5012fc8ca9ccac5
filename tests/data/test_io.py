import json
from pathlib import Path

import pytest

from igpo_kit.data import io
from igpo_kit.data.io import DataError, read_located, read_rows, require

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "data"


def test_read_jsonl():
    rows = read_rows(FIX / "gsm8k_10.jsonl")
    assert len(rows) == 10 and set(rows[0]) == {"question", "answer"}


def test_malformed_jsonl_names_file_and_line():
    with pytest.raises(DataError) as info:
        read_rows(FIX / "malformed_line3.jsonl")
    err = info.value
    assert isinstance(err, ValueError)
    assert str(err).startswith(f"{FIX / 'malformed_line3.jsonl'}:3: malformed JSON row (")
    assert "Expecting ',' delimiter" in str(err)
    assert err.line == 3 and err.path.endswith("malformed_line3.jsonl")


def test_blank_lines_keep_line_numbers(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"a": 1}\n\n{"a": 2}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"d\.jsonl:4: expected a JSON object"):
        read_rows(p)
    located = read_located(FIX / "missing_answer.jsonl")
    assert [r.line for r in located] == [1, 2, 3]


def test_require_names_file_line_field_and_present_fields():
    rows = read_located(FIX / "missing_answer.jsonl")
    assert require(rows[0], "question", "answer") == ["What is 1+1?", "2"]
    with pytest.raises(DataError) as info:
        require(rows[1], "question", "answer")
    msg = str(info.value)
    assert "missing_answer.jsonl:2: missing field 'answer'" in msg
    assert "fields present: question, solution" in msg
    assert info.value.line == 2


def test_json_list_and_data_wrapper(tmp_path):
    rows = read_rows(FIX / "metamathqa_6.json")
    assert len(rows) == 6
    p = tmp_path / "wrapped.json"
    p.write_text(json.dumps({"data": [{"q": 1}, {"q": 2}]}))
    assert read_rows(p) == [{"q": 1}, {"q": 2}]
    located = read_located(p)
    assert located[1].where == f"{p}: row 2"
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": 3}')
    with pytest.raises(DataError, match="expected a JSON list"):
        read_rows(bad)
    broken = tmp_path / "broken.json"
    broken.write_text('[{"a": 1},\n {"a": 2]\n')
    with pytest.raises(DataError, match=r"broken\.json:2: malformed JSON"):
        read_rows(broken)


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    p = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist([{"question": "q1", "answer": "1"}, {"question": "q2", "answer": "2"}]), p)
    assert read_rows(p) == [{"question": "q1", "answer": "1"}, {"question": "q2", "answer": "2"}]
    (row,) = [r for r in read_located(p) if r.line == 2]
    assert row.where.endswith("d.parquet: row 2")


def test_missing_local_file_and_unsupported_type(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_rows(tmp_path / "nope.jsonl")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported file type"):
        read_rows(tmp_path / "x.csv")
    with pytest.raises(DataError, match="is a directory"):
        read_rows(tmp_path)


def test_hub_connection_error_is_wrapped(monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError) as info:
        read_rows("openai/gsm8k", name="main", split="test")
    msg = str(info.value)
    assert "openai/gsm8k" in msg and "could not reach" in msg and "local file path" in msg
    assert info.value.path == "openai/gsm8k"


def test_hub_offline_for_real():
    import os

    if os.environ.get("HF_HUB_OFFLINE") != "1" and os.environ.get("HF_DATASETS_OFFLINE") != "1":
        pytest.skip("only run offline (online, a Hub id would spend ~23 s in retries)")
    with pytest.raises(DataError, match="local file path"):
        read_rows("openai/gsm8k", name="main", split="test")


def test_is_local_path():
    assert io.is_local_path("data/train.jsonl")
    assert io.is_local_path("./gsm8k")
    assert not io.is_local_path("openai/gsm8k")


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_non_utf8_bytes_name_file_and_line(tmp_path, suffix):
    p = tmp_path / f"latin1{suffix}"
    rows = ['{"question": "ok", "answer": "1"}', '{"question": "caf\xe9", "answer": "2"}']
    text = "\n".join(rows) + "\n" if suffix == ".jsonl" else "[\n" + ",\n".join(rows) + "\n]\n"
    p.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError) as info:
        read_rows(p)
    line = 2 if suffix == ".jsonl" else 3
    assert str(info.value).startswith(f"{p}:{line}: not UTF-8 text (byte 0xe9")
    assert info.value.line == line
