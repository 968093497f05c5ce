"""The label vocabulary: which names and values mean safe (0) and unsafe (1).

Data files (training's readers), parity files (export's --parity-data) and a checkpoint's config.id2label (export's
unsafe index) are all read through it, so a name means the same class wherever it appears.
"""

from __future__ import annotations

from collections.abc import Mapping

LABELS = {0: "safe", 1: "unsafe"}

# Values a label may hold, and what they mean; anything else is refused where it is read.
# (False and True hash as 0 and 1, so booleans are covered too.)
LABEL_VALUES: dict[object, int] = {
    0: 0, 1: 1, "0": 0, "1": 1,
    "safe": 0, "unsafe": 1, "benign": 0, "harmful": 1, "unharmful": 0, "harmless": 0,
}


def label_value(value: object, label_map: Mapping[object, int] | None = None) -> int | None:
    """0 or 1 for a known label value, else None."""
    table = LABEL_VALUES if label_map is None else label_map
    key = value.strip().lower() if isinstance(value, str) else value
    try:
        return table.get(key)
    except TypeError:  # an unhashable value (a list, a dict) is no label
        return None
