"""The one schema every labelled row takes: ``prompt``, ``response`` (None for a prompt-level row), ``label``
(1 unsafe, 0 safe; for a response-level row it says whether the *response* is harmful), ``source``,
``category`` and ``group``.

``group`` is what a row's twins share: the normalised harmful goal for a jailbreak row (its prompt wraps
the goal), else the normalised prompt. Splits are drawn per group (``splits.py``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from guard_sdk.errors import InputError
from guard_sdk.labels import LABEL_VALUES as LABEL_VALUES  # in the runtime: export reads labels through it too
from guard_sdk.labels import LABELS as LABELS
from guard_sdk.labels import label_value as label_value

COLUMNS = ("prompt", "response", "label", "source", "category", "group")


SPLITS = ("train", "dev", "test")


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


def to_dataset(rows: Sequence[Row]) -> Any:
    """A ``datasets.Dataset`` in the one schema."""
    import datasets

    return datasets.Dataset.from_list([r.record() for r in rows], features=features())


def features() -> Any:
    import datasets

    text = datasets.Value("string")
    return datasets.Features({"prompt": text, "response": text, "label": datasets.Value("int8"), "source": text,
                              "category": text, "group": text})

