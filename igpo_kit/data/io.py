"""Reading rows from local files (``.jsonl``, ``.json``, ``.parquet``) or the Hugging Face Hub, with located errors.

A *path* that exists locally is read as a file; anything else is treated as a Hub dataset id and loaded with
``datasets.load_dataset(path, name, split=split)`` (``datasets`` is imported only then). Offline (or without a
network) a Hub id fails with a :class:`DataError` that says so and suggests passing a local file instead.

Every row carries its location (``file:line`` for JSONL, ``file: row N`` otherwise, 1-based) so that the loaders
can report a bad row precisely: see :func:`require`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

__all__ = ["DataError", "Row", "read_rows", "read_located", "require", "is_local_path", "LOCAL_SUFFIXES"]

LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")


from igpo_kit.errors import ConfigError  # noqa: E402  (CLI exit code 2)


class DataError(ConfigError):
    """A data file or dataset that cannot be used as given; the message names the file and the line/row.

    Attributes: ``path`` (file or Hub id), ``line`` (1-based line for JSONL, 1-based row otherwise; None if n/a).
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        super().__init__(message)


@dataclass(frozen=True)
class Row:
    """One row and where it came from (for error messages)."""

    data: Mapping[str, Any]
    source: str  # file path or Hub id
    line: int  # 1-based line (JSONL) or row number (other formats)
    unit: str = "line"  # "line" or "row"

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.unit == "line" else f"{self.source}: row {self.line}"


def is_local_path(path: str | os.PathLike) -> bool:
    """True if ``path`` should be read as a local file (it exists, or it looks like a file path)."""
    p = Path(path)
    if p.exists():
        return True
    text = str(path)
    return text.endswith(LOCAL_SUFFIXES) or text.startswith((".", "/", "~"))


def read_rows(path: str | os.PathLike, name: str | None = None, split: str = "train") -> list[dict]:
    """Rows of a local ``.jsonl``/``.json``/``.parquet`` file, or of a Hub dataset (``name`` config, ``split``)."""
    return [dict(r.data) for r in read_located(path, name=name, split=split)]


def read_located(path: str | os.PathLike, name: str | None = None, split: str = "train") -> list[Row]:
    """Like :func:`read_rows` but every row keeps its location."""
    from igpo_kit.assets import resolve_data

    path = resolve_data(str(path))
    if is_local_path(path):
        return _read_local(Path(path).expanduser())
    return _read_hub(str(path), name, split)


def _read_local(path: Path) -> list[Row]:
    if not path.exists():
        raise DataError(f"{path}: file not found", path=path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory; pass a .jsonl, .json or .parquet file", path=path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".parquet":
        return _read_parquet(path)
    raise DataError(f"{path}: unsupported file type {suffix!r}; expected one of {', '.join(LOCAL_SUFFIXES)}", path=path)


def _decode(raw: bytes, path: Path, first_line: int) -> str:
    """``raw`` as UTF-8, or a :class:`DataError` naming the file, the line and the byte that is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + raw.count(b"\n", 0, exc.start)
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = raw[exc.start:exc.start + 1].hex()
        raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{bad} at column {col}); "
                        f"re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)", path=path, line=line) from None


def _read_jsonl(path: Path) -> list[Row]:
    rows: list[Row] = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            line = _decode(raw, path, lineno)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: malformed JSON row ({exc})", path=path, line=lineno) from None
            if not isinstance(obj, dict):
                raise DataError(
                    f"{path}:{lineno}: expected a JSON object per line, got {type(obj).__name__}", path=path, line=lineno
                )
            rows.append(Row(obj, str(path), lineno, "line"))
    return rows


def _read_json(path: Path) -> list[Row]:
    raw = path.read_bytes()
    try:
        obj = json.loads(_decode(raw, path, 1))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})", path=path, line=exc.lineno) from None
    if isinstance(obj, dict) and isinstance(obj.get("data"), list):
        obj = obj["data"]
    if not isinstance(obj, list):
        raise DataError(f'{path}: expected a JSON list of objects or {{"data": [...]}}, got {type(obj).__name__}', path=path)
    rows = []
    for i, item in enumerate(obj, start=1):
        if not isinstance(item, dict):
            raise DataError(f"{path}: row {i}: expected a JSON object, got {type(item).__name__}", path=path, line=i)
        rows.append(Row(item, str(path), i, "row"))
    return rows


def _read_parquet(path: Path) -> list[Row]:
    # pyarrow (installed with `datasets`) reads the file directly: no Hub cache writes, no `datasets` import cost
    try:
        try:
            import pyarrow.parquet as pq  # noqa: PLC0415
        except ImportError:  # pragma: no cover - pyarrow always comes with datasets
            import datasets  # noqa: PLC0415

            records: Iterable[dict] = datasets.Dataset.from_parquet(str(path), keep_in_memory=True).to_list()
        else:
            records = pq.read_table(path).to_pylist()
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{path}: cannot read parquet file ({type(exc).__name__}: {exc})", path=path) from exc
    return [Row(r, str(path), i, "row") for i, r in enumerate(records, start=1)]


def _read_hub(path: str, name: str | None, split: str) -> list[Row]:
    label = path + (f" ({name})" if name else "") + f" [{split}]"
    try:
        import datasets  # noqa: PLC0415

        ds = datasets.load_dataset(path, name, split=split)
    except (ConnectionError, TimeoutError) as exc:
        raise DataError(
            f"{label}: could not reach the Hugging Face Hub ({type(exc).__name__}: {exc}); "
            "pass a local file path (.jsonl, .json or .parquet) instead",
            path=path,
        ) from exc
    except FileNotFoundError as exc:
        raise DataError(
            f"{path}: no such local file, and not a dataset found on the Hub ({exc}); "
            "pass an existing local file path (.jsonl, .json or .parquet) or a valid Hub id",
            path=path,
        ) from exc
    except Exception as exc:  # noqa: BLE001 - datasets raises many types (DatasetNotFoundError, ValueError ...)
        msg = str(exc)
        offline = any(k in msg for k in ("offline", "Offline", "Couldn't reach", "connect", "resolve"))
        hint = "could not be reached" if offline else "could not be loaded"
        raise DataError(
            f"{label}: dataset {hint} ({type(exc).__name__}: {msg[:300]}); "
            "pass a local file path (.jsonl, .json or .parquet) instead",
            path=path,
        ) from exc
    return [Row(r, label, i, "row") for i, r in enumerate(ds, start=1)]


def require(row: Row, *fields: str) -> list[Any]:
    """The values of ``fields`` in ``row``; a :class:`DataError` naming the file, line/row and field if one is missing.

    A field whose value is None counts as missing.
    """
    values = []
    for name in fields:
        value = row.data.get(name)
        if value is None:
            present = ", ".join(sorted(row.data)) or "none"
            raise DataError(
                f"{row.where}: missing field {name!r} (fields present: {present})", path=row.source, line=row.line
            )
        values.append(value)
    return values
