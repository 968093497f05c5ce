"""The look-alike table of a bundle's ``normalized`` view (guard_sdk.views): each character that Unicode's
confusables list as imitating an ASCII letter or digit, mapped to it.

Why a table in the bundle rather than in each runtime: the Python and Java runtimes must fold identically, and a
table that travels in guard.json (covered by its signature) cannot drift between them. The data is Unicode's
confusables.txt as the maintained confusable_homoglyphs package ships it; characters that NFKC already turns into
ASCII (fullwidth and mathematical letters) are left out, since the view applies NFKC first, and so are those
outside the Basic Multilingual Plane (none of Unicode's look-alikes of ASCII there survives NFKC).
"""

from __future__ import annotations

import json
import unicodedata
from importlib import resources


def lookalike_table() -> dict[str, str]:
    """{look-alike character: the ASCII letter or digit it imitates}, sorted by character."""
    data = json.loads(resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8"))
    table: dict[str, set[str]] = {}
    for key, entries in data.items():
        for entry in entries:
            for char, ascii_char in ((key, entry["c"]), (entry["c"], key)):
                if (len(char) == 1 and len(ascii_char) == 1 and not char.isascii() and ascii_char.isascii()
                        and ascii_char.isalnum() and ord(char) <= 0xFFFF
                        and not unicodedata.normalize("NFKC", char).isascii()):
                    table.setdefault(char, set()).add(ascii_char)
    ambiguous = {c: v for c, v in table.items() if len(v) > 1}
    if ambiguous:  # the data maps each look-alike to one ASCII character; a new release that does not is refused
        raise ValueError(f"look-alikes of several ASCII characters: {sorted(ambiguous.items())[:5]}")
    return {char: next(iter(table[char])) for char in sorted(table)}
