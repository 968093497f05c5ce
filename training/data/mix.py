"""The training mix as a table: rows per source, label and category of each split, with each source's licence,
so a model card can say what a model saw and under which terms."""

from __future__ import annotations

from collections import Counter
from typing import Any

from guard_sdk.categories import TAXONOMY
from guard_sdk.licences import builtin_of, licence_of
from guard_sdk.training.data.taxonomy import categories_of

TOP_CATEGORIES = 3

def mix_table(splits: dict[str, Any], holdout: Any | None = None) -> str:
    """Markdown: one line per source with its train rows by label, dev and test rows, its most common train
    categories and its licence (non-commercial ones say NC); the evaluation-only rows after it."""
    train = splits["train"]
    labels = Counter(zip(train["source"], train["label"]))
    categories: dict[str, Counter[str]] = {}
    for source, category in zip(train["source"], train["category"]):
        categories.setdefault(source, Counter())[category or "–"] += 1
    other = {name: Counter(ds["source"]) for name, ds in splits.items() if name != "train"}
    lines = ["| source | licence | train safe | train unsafe | " + " | ".join(other) + " | top train categories |",
             "|---|---|---|---|" + "---|" * len(other) + "---|"]
    for source in sorted({s for s, _ in labels} | {s for c in other.values() for s in c}):
        licence = licence_of(source)
        top = ", ".join(f"{c} {n}" for c, n in categories.get(source, Counter()).most_common(TOP_CATEGORIES))
        lines.append(f"| `{source}` | {licence} | {labels[(source, 0)]} | {labels[(source, 1)]} | "
                     + " | ".join(str(counts[source]) for counts in other.values()) + f" | {top} |")
    totals = Counter(train["label"])
    lines.append(f"| **all** | | {totals[0]} | {totals[1]} | "
                 + " | ".join(str(len(ds)) for name, ds in splits.items() if name != "train") + " | |")
    if holdout is not None:
        held = Counter(zip(map(builtin_of, holdout["source"]), holdout["label"]))
        lines += ["", "Evaluation only (never trained on; their near-duplicates are removed from train and dev):", "",
                  "| source | licence | safe | unsafe |", "|---|---|---|---|"]
        lines += [f"| `{s}` | {licence_of(s)} | {held[(s, 0)]} | {held[(s, 1)]} |"
                  for s in sorted({s for s, _ in held})]
    return "\n".join(lines + ["", category_table({**splits, "evaluation only": holdout})]) + "\n"


def category_table(parts: dict[str, Any]) -> str:
    """Markdown: unsafe rows per taxonomy category (a row may count in several) in each part (a split, the
    evaluation-only rows; None: left out), and the unsafe rows whose source names no category."""
    counts = {name: Counter() for name, ds in parts.items() if ds is not None}
    for name, counter in counts.items():
        ds = parts[name]
        for source, category, label in zip(ds["source"], ds["category"], ds["label"]):
            cats = categories_of(source, category, label)
            counter.update(("unknown",) if cats is None else cats)
    head = ["Unsafe rows per category of the taxonomy (docs/taxonomy.md; a row may count in several; unknown: "
            "its source names no harm):", "", "| category | code | " + " | ".join(counts) + " |",
            "|---|---|" + "---|" * len(counts)]
    rows = [f"| {c.name} | {c.code} | " + " | ".join(str(n[c.name]) for n in counts.values()) + " |" for c in TAXONOMY]
    return "\n".join(head + rows + ["| unknown | | " + " | ".join(str(n["unknown"]) for n in counts.values()) + " |"])
