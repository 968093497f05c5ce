"""Splits without leakage: rows are assigned by a hash of their group, so a prompt, its responses and its
copies in other sources always land in the same split, and nothing an evaluation sees is trained on."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from guard_sdk.training.data.schema import LABELS, DataError, normalize


def split_of(group: str, seed: int, fractions: Sequence[float]) -> int:
    """Index of the split a group falls in: a hash of (seed, group), so the same for any row order."""
    digest = hashlib.sha256(f"{seed}\x00{group}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    total = 0.0
    for index, share in enumerate(fractions):
        total += share
        if point < total:
            return index
    return len(fractions) - 1


def _key(row: Mapping[str, Any]) -> tuple[str, str | None, int]:
    response = row["response"]
    return normalize(row["prompt"]), None if response is None else normalize(response), row["label"]


def make_splits(
    dataset: Any,
    seed: int,
    fractions: Mapping[str, float],
    holdout: Any | None = None,
    evaluation_prompts: Sequence[str] = (),
) -> Any:
    """train/dev/test (the names of ``fractions``) by group, then the leftovers removed.

    Drops rows that repeat another's normalised (prompt, response, label) within a split, and every
    row that shares a group or a normalised prompt with a ``holdout`` row (a source kept for evaluation only), or
    whose normalised prompt is one of ``evaluation_prompts`` (a suite of our own). Unlabelled rows are refused.
    """
    import datasets

    if abs(sum(fractions.values()) - 1.0) > 1e-6 or min(fractions.values()) < 0:
        raise DataError(f"split fractions must be non-negative and sum to 1, got {dict(fractions)}")
    unlabelled = sum(label is None for label in dataset["label"])
    if unlabelled:
        raise DataError(f"{unlabelled} rows have no label; label them with a teacher before splitting")
    banned = {normalize(p) for p in evaluation_prompts}
    if holdout is not None:
        banned |= set(holdout["group"]) | {normalize(p) for p in holdout["prompt"]}
    names = list(fractions)
    shares = [fractions[n] for n in names]
    chosen: dict[str, list[int]] = {n: [] for n in names}
    seen: dict[str, set[tuple[str, str | None, int]]] = {n: set() for n in names}
    for index, row in enumerate(dataset):
        if banned and (row["group"] in banned or normalize(row["prompt"]) in banned):
            continue
        name = names[split_of(row["group"], seed, shares)]
        key = _key(row)
        if key not in seen[name]:
            seen[name].add(key)
            chosen[name].append(index)
    return datasets.DatasetDict({n: dataset.select(chosen[n]) for n in names})


def overlap(a: Any, b: Any) -> int:
    """How many rows of ``a`` share a group or a normalised prompt with a row of ``b`` (0 means no leakage)."""
    keys = set(b["group"]) | {normalize(p) for p in b["prompt"]}
    return sum(g in keys or normalize(p) in keys for g, p in zip(a["group"], a["prompt"]))


def cap_per_source(dataset: Any, limit: int | None, seed: int) -> Any:
    """At most ``limit`` rows of each source, drawn by seed (a 30k-row benign pool would drown the rest)."""
    if limit is None:
        return dataset

    rng = np.random.default_rng(seed)
    sources = np.asarray(dataset["source"])
    keep: list[int] = []
    for name in sorted(set(sources)):
        index = np.flatnonzero(sources == name)
        keep.extend(sorted(rng.choice(index, size=min(limit, len(index)), replace=False).tolist()))
    return dataset.select(sorted(keep))


def data_summary(splits: dict[str, Any]) -> dict[str, dict[str, dict[str, int]]]:
    """Rows per split, source and label: what the model saw and what it was judged on."""
    summary: dict[str, dict[str, dict[str, int]]] = {}
    for name, ds in splits.items():
        counts = Counter(zip(ds["source"], ds["label"]))
        summary[name] = {src: {LABELS[y]: counts[(src, y)] for y in (0, 1) if counts[(src, y)]}
                         for src in sorted({s for s, _ in counts})}
    return summary
