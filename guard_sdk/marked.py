"""Markdown files that hold generated blocks between two marker comments: what ``eval --suite`` and
``bench --serve`` write into docs, model cards and benchmarks/RESULTS.md, leaving the hand-written rest alone."""

from __future__ import annotations

import os
import re
from pathlib import Path

from guard_sdk.errors import InputError


def update_marked(path: str | Path, block: str, begin: str, end: str, heading: str = "") -> Path:
    """Put ``block`` between the ``begin`` and ``end`` markers of the markdown file ``path``, leaving every byte
    outside them as it was; a file without the markers gets them at its end (after ``heading``), a missing file is
    created. Running it twice with the same block leaves the file unchanged."""
    path = Path(path)
    text = ""
    if path.exists():
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: cannot read it as UTF-8 text ({e})") from e
    newline = "\r\n" if "\r\n" in text else "\n"
    marked = newline.join([begin, *block.strip("\n").split("\n"), end])
    begins, ends = text.count(begin), text.count(end)
    if begins == ends == 0:
        lead = (text.rstrip("\r\n") + newline * 2) if text.strip() else ""
        text = lead + (heading + newline * 2 if heading else "") + marked + newline
    elif begins == ends == 1 and text.index(begin) < text.index(end):
        start, stop = text.index(begin), text.index(end) + len(end)
        text = text[:start] + marked + text[stop:]
    else:
        raise InputError(f"{path}: holds {begins} {begin!r} and {ends} {end!r} marker(s); expected one of each, "
                         "the first before the second (or none, to have them added at the end)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(text.encode("utf-8"))
    os.replace(tmp, path)
    return path


# A generated block, with the "## " heading that update_marked put before it where it has one.
_BLOCK = re.compile(r"^(?:## [^\n]*\n\s*)?(<!-- (.+?): BEGIN -->)$.*?^<!-- \2: END -->$", re.M | re.S)


def marked_blocks(text: str) -> list[str]:
    """Every generated block of ``text``, markers and heading included: what a writer that rewrites the whole file
    (guard-sdk bench's RESULTS.md) carries over, so another command's block is not lost."""
    return [m.group(0) for m in _BLOCK.finditer(text)]
