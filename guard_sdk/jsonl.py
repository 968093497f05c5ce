"""The one JSONL reader: ``guard-sdk classify --jsonl`` and the training data loaders both read through it.

A line ends at "\\n" only. ``str.splitlines`` would also end one at U+2028, U+0085 and other separators that
valid JSON strings may hold, so a good line would be cut in two. Each line is decoded and parsed on its own,
so a bad line (not UTF-8, not JSON, or JSON that the parser cannot take: 1,000 nested brackets raise
RecursionError, a 5,000-digit number ValueError) is that line's error, and the other lines still read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BadLine:
    """A line that is not one JSON value; ``error`` says why in words a user can act on."""

    error: str


def jsonl_lines(data: bytes | Iterable[bytes], blank_is_error: bool = False) -> Iterator[tuple[int, Any]]:
    """(line number from 1, the parsed JSON value or a ``BadLine``) for each line that is not blank; a blank
    line before the last is a ``BadLine`` too with ``blank_is_error`` (a data file, where it is a lost row).

    ``data``: the whole file's bytes, or a binary stream (an open file, ``sys.stdin.buffer``), read a line
    at a time. A UTF-8 byte-order mark at the start is skipped.
    """
    lines = data.removesuffix(b"\n").split(b"\n") if isinstance(data, bytes) else data
    for number, raw in enumerate(lines, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield number, BadLine(f"not valid UTF-8 (byte {e.start})")
            continue
        if not line.strip():
            if blank_is_error:
                yield number, BadLine("empty line")
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as e:
            yield number, BadLine(f"not valid JSON ({e.msg})")
        except Exception as e:  # whatever the parser raises (nesting too deep, a number past the digit limit)
            yield number, BadLine(f"not valid JSON ({type(e).__name__}: {str(e)[:120]})")
