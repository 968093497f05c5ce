"""The one schema every labelled row takes: ``prompt``, ``response`` (None for a prompt-level row), ``label``
(1 unsafe, 0 safe; for a response-level row it says whether the *response* is harmful), ``source``,
``category`` and ``group``.

``group`` is what a row's twins share: the normalised harmful goal for a jailbreak row (its prompt wraps
the goal), else the normalised prompt. Splits are drawn per group (``splits.py``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from guard_sdk.errors import InputError

COLUMNS = ("prompt", "response", "label", "source", "category", "group")


SPLITS = ("train", "dev", "test")


# Values a label column may hold, and what they mean; anything else is refused with its row.
# (False and True hash as 0 and 1, so booleans are covered too.)
LABEL_VALUES: dict[object, int] = {
    0: 0, 1: 1, "0": 0, "1": 1,
    "safe": 0, "unsafe": 1, "benign": 0, "harmful": 1, "unharmful": 0, "harmless": 0,
}


class DataError(InputError):
    """A data file or source that cannot be read as labelled safety data; the message names file and row."""


@dataclass(frozen=True)
class Row:
    """One labelled example, before it becomes a row of a ``datasets.Dataset``."""

    prompt: str
    response: str | None
    label: int | None
    source: str
    category: str | None = None
    group: str | None = None  # None: the normalised prompt

    def record(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "response": self.response, "label": self.label, "source": self.source,
                "category": self.category, "group": self.group or normalize(self.prompt)}


def normalize(text: str) -> str:
    """The text two near-duplicates share: NFKC, case-folded, letters and digits only, single spaces."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


def label_value(value: object, label_map: Mapping[object, int] | None = None) -> int | None:
    """0 or 1 for a known label value, else None."""
    table = LABEL_VALUES if label_map is None else label_map
    key = value.strip().lower() if isinstance(value, str) else value
    try:
        return table.get(key)
    except TypeError:  # an unhashable value (a list, a dict) is no label
        return None


def to_dataset(rows: Sequence[Row]) -> Any:
    """A ``datasets.Dataset`` in the one schema."""
    import datasets

    return datasets.Dataset.from_list([r.record() for r in rows], features=features())


def features() -> Any:
    import datasets

    text = datasets.Value("string")
    return datasets.Features({"prompt": text, "response": text, "label": datasets.Value("int8"), "source": text,
                              "category": text, "group": text})


LABELS = {0: "safe", 1: "unsafe"}
