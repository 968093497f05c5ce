"""Reading a user's data file (jsonl, json, csv, parquet) into rows of the schema, naming the file and row
of every problem."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from guard_sdk.jsonl import BadLine, jsonl_lines
from guard_sdk.training.data.schema import DataError, Row, label_value

FILE_FORMATS = {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def _decode(path: Path, raw: bytes) -> str:
    """UTF-8 text of a file; a byte that is not UTF-8 (a file of mixed encodings) is reported by line."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line}: not valid UTF-8 (byte {e.start}); save the file as UTF-8") from e


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a jsonl, json (a list of objects), csv or parquet file, as dicts."""
    path = Path(path)
    fmt = FILE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unknown file type; use one of {', '.join(FILE_FORMATS)}")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as e:  # pyarrow raises its own error types for a corrupt file
            raise DataError(f"{path}: not a readable parquet file ({e})") from e
    text = _decode(path, path.read_bytes())
    if fmt == "csv":  # a csv cannot say None: an empty cell is a missing value (an empty response: prompt-level)
        rows = csv.DictReader(io.StringIO(text, newline=""))
        return [{k: None if v == "" else v for k, v in r.items()} for r in rows]
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from e
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise DataError(f"{path}: a .json data file must hold a list of objects")
        return data
    records = []
    for number, record in jsonl_lines(text.encode("utf-8"), blank_is_error=True):
        if isinstance(record, BadLine):
            raise DataError(f"{path}: row {number}: {record.error}")
        if not isinstance(record, dict):
            raise DataError(f"{path}: row {number}: expected a JSON object")
        records.append(record)
    return records


def rows_from_records(
    records: Iterable[Mapping[str, Any]],
    where: str,
    source: str,
    columns: Mapping[str, str] | None = None,
    label_map: Mapping[object, int] | None = None,
) -> list[Row]:
    """Map and check records: ``columns`` maps our names (prompt, response, label, category) to the file's."""
    names = {"prompt": "prompt", "response": "response", "label": "label", "category": "category", **(columns or {})}
    unknown = set(names) - {"prompt", "response", "label", "category"}
    if unknown:
        raise DataError(f"{where}: unknown column mapping for {sorted(unknown)}; map prompt, response, label, category")
    rows = []
    for number, record in enumerate(records, start=1):
        # prompt and label are always needed; response and category only where the caller named a column.
        named = [n for k in ("prompt", "label", *(columns or {})) for n in names[k].split("|")]
        missing = list(dict.fromkeys(n for n in named if n not in record))
        if missing:
            raise DataError(f"{where}: row {number}: missing column(s) {', '.join(missing)}; it has "
                            f"{', '.join(map(str, record)) or 'none'} (map yours with --columns prompt=NAME,...)")
        prompt, response = record[names["prompt"]], record.get(names["response"])
        if not isinstance(prompt, str) or not prompt.strip():
            raise DataError(f"{where}: row {number}: empty prompt")
        if response is not None and not isinstance(response, str):
            raise DataError(f"{where}: row {number}: response must be text, got {type(response).__name__}")
        # "a|b": the first of the label columns that holds a value, e.g. WildGuardMix's response_harm_label
        # where a row has a response and prompt_harm_label where it has none.
        value = next((record[n] for n in names["label"].split("|") if record[n] is not None), None)
        label = label_value(value, label_map)
        if label is None:
            raise DataError(f"{where}: row {number}: unknown label value {value!r}; "
                            f"use 0/1, safe/unsafe, or pass a label map")
        category = record.get(names["category"])
        # An empty response is a pair (docs/bundle.md): the prompt was answered with nothing.
        rows.append(Row(prompt, response, label, source, None if category in (None, "") else str(category)))
    if not rows:
        raise DataError(f"{where}: no rows")
    return rows
