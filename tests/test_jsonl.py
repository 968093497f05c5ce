"""The one JSONL reader (guard_sdk/jsonl.py) that the CLI and the data loaders share."""

import io
import json

from guard_sdk.jsonl import BadLine, jsonl_lines
from guard_sdk.training import data as D

GOOD = {"prompt": "first\u2028second\u0085third", "response": None}  # JSON may hold these separators raw


def _lines() -> bytes:
    return b"\n".join([
        json.dumps(GOOD, ensure_ascii=False).encode(),
        b"[" * 100_000 + b"]" * 100_000,  # RecursionError inside the parser
        b'{"prompt": ' + b"9" * 5_000 + b"}",  # ValueError: past Python's int digit limit
        b"",
        b"\xff",
        json.dumps({"prompt": "last", "response": ""}).encode(),
    ]) + b"\n"


def test_lines_end_at_newline_only_and_a_parser_error_is_that_lines_alone():
    for source in (_lines(), io.BytesIO(_lines())):  # whole bytes or a stream, the same lines
        got = list(jsonl_lines(source))
        assert [n for n, _ in got] == [1, 2, 3, 5, 6]
        assert got[0][1] == GOOD
        assert isinstance(got[1][1], BadLine) and "RecursionError" in got[1][1].error
        assert isinstance(got[2][1], BadLine) and "ValueError" in got[2][1].error
        assert got[3][1] == BadLine("not valid UTF-8 (byte 0)")
        assert got[4][1] == {"prompt": "last", "response": ""}


def test_a_data_file_keeps_separators_inside_a_line_and_an_empty_response_as_a_pair(tmp_path):
    path = tmp_path / "rows.jsonl"
    rows = [{"prompt": "a\u2028b", "response": "", "label": 0}, {"prompt": "c\u0085d", "label": 1}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    ds = D.load_data(path)
    assert ds["prompt"] == ["a\u2028b", "c\u0085d"]
    assert ds["response"] == ["", None]  # docs/bundle.md rule 4: an empty response is still a pair
