"""The category head: P(category) for each harm of the taxonomy (docs/taxonomy.md) that a model's data supports,
multi-label (a text can be hate and violence at once), beside P(unsafe).

It is trained with the unsafe head, one model and one loss: the classifier gains one output per category
(logits 0 and 1 stay the unsafe head's, logits 2.. are the categories', named "category:NAME" in config.id2label),
and each batch adds ``weight`` x the categories' binary cross-entropy to the unsafe loss. So every exporter, the
parity check and every runtime carry them without a graph of their own, at the cost of a few rows of one matmul.
Why jointly: a head fitted afterwards on the frozen encoder of a binary guard found little to read (dev F1 0.02 to
0.71 per category on row (b) of the broad ablation), since binary training squeezes out what tells harms apart.

Which rows teach it: a safe row says "no category"; an unsafe row whose source (or, for a HarmAug row, whose
teacher) names categories of the taxonomy says "these"; an unsafe row that nobody names teaches P(unsafe) only. A
category is scored only with ``min_train_rows`` unsafe train rows and ``min_dev_rows`` dev rows of it; the others
are listed as unsupported. Each one's threshold is the best F1 on the dev rows whose categories are known
(``calibrate``'s max_f1 rule, per category), each row scored as the runtime scores it (its highest window).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from guard_sdk.categories import LABEL_PREFIX, NAMES
from guard_sdk.training.data.taxonomy import categories_of
from guard_sdk.training.recipe import CategoriesRecipe

log = logging.getLogger(__name__)

THRESHOLD_RULE = "max_f1 per category on the dev rows whose categories are known"
MAX_POS_WEIGHT = 30.0  # balance sqrt: a category of 1 positive in 10,000 known rows counts 30x, not 100x
TARGETS, KNOWN = "category_targets", "category_known"  # the training columns the category loss reads


@dataclass(frozen=True)
class CategoryLoss:
    """What the category head adds to a training loss: ``weight`` x ``category_loss`` with ``pos_weight``."""

    weight: float
    pos_weight: list[float] | None = None


def category_targets(dataset: Any, names: Sequence[str] = NAMES) -> tuple[np.ndarray, np.ndarray]:
    """(targets, known): a 0/1 matrix of rows × ``names`` and whether each row's categories are known (a safe
    row's are: none)."""
    targets = np.zeros((len(dataset), len(names)), dtype=np.float32)
    known = np.zeros(len(dataset), dtype=bool)
    column = {name: i for i, name in enumerate(names)}
    for row, (source, category, label) in enumerate(zip(dataset["source"], dataset["category"], dataset["label"])):
        cats = categories_of(source, category, int(label >= 0.5))
        if cats is None:
            continue
        known[row] = True
        for cat in cats:
            if cat in column:
                targets[row, column[cat]] = 1.0
    return targets, known


def supported(train: tuple[np.ndarray, np.ndarray], dev: tuple[np.ndarray, np.ndarray], spec: CategoriesRecipe,
              names: Sequence[str] = NAMES) -> tuple[list[str], dict[str, dict[str, int]]]:
    """The categories with enough unsafe rows to fit (train) and calibrate (dev), and every category's counts."""
    counts = {name: {"train": int(train[0][train[1], i].sum()), "dev": int(dev[0][dev[1], i].sum())}
              for i, name in enumerate(names)}
    keep = [n for n in names if counts[n]["train"] >= spec.min_train_rows and counts[n]["dev"] >= spec.min_dev_rows]
    return keep, counts


def positive_weights(targets: np.ndarray, known: np.ndarray, balance: str) -> list[float] | None:
    """Each category's weight on its positive rows in the loss: none for ``balance`` "none"; for "sqrt",
    sqrt(negatives / positives) among the known rows, between 1 and MAX_POS_WEIGHT.

    Why: the safe rows all say "none", so a rare harm's few positives are drowned and the head learns its base rate
    (dev F1 0.015 to 0.34 for all but three categories of row (d+), whose top category was always hate or
    non-violent crimes). The square root, not the full ratio, keeps the common categories' precision."""
    if balance == "none":
        return None
    positives = targets[known].sum(axis=0)
    negatives = known.sum() - positives
    ratio = np.sqrt(negatives / np.maximum(positives, 1.0))
    return np.clip(ratio, 1.0, MAX_POS_WEIGHT).round(4).tolist()


def with_category_columns(dataset: Any, names: Sequence[str]) -> Any:
    """``dataset`` with the columns the category loss reads: each row's 0/1 targets over ``names`` and whether
    they are known."""
    targets, known = category_targets(dataset, names)
    return dataset.add_column(TARGETS, targets.tolist()).add_column(KNOWN, known.astype(np.float32).tolist())


def category_loss(logits: Any, targets: Any, known: Any, pos_weight: Sequence[float] | None = None) -> Any:
    """The binary cross-entropy of the category logits (each category's positives weighted by ``pos_weight``:
    ``positive_weights``), summed over categories and averaged over the rows whose categories are known (0 for a
    batch with none), in float32 whatever the logits' dtype.

    Summed, not averaged, over categories: each category's gradient is then on the scale of the unsafe head's.
    Averaged, 13 categories each pulled at 1/13 of it, and row (d+) of the broad ablation learned only each
    category's base rate (dev F1 0.03 to 0.47, every text's highest category "hate")."""
    import torch
    import torch.nn.functional as F

    weight = None if pos_weight is None else torch.tensor(pos_weight, dtype=torch.float32, device=logits.device)
    per_row = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none",
                                                 pos_weight=weight).sum(dim=-1)
    known = known.float()
    return (per_row * known).sum() / known.sum().clamp(min=1.0)


def add_category_outputs(model: Any, names: Sequence[str], seed: int) -> None:
    """Grow the classifier of a two-label guard by one output per category, initialised as the model initialises
    its own layers (normal, std ``initializer_range``; bias 0), for training."""
    std = float(getattr(model.config, "initializer_range", 0.02))
    features = getattr(model.classifier, "in_features", None)
    if features is None:
        raise ValueError(f"{type(model).__name__} has no linear `classifier` layer to extend with categories")
    weight = np.random.default_rng(seed).normal(0.0, std, (len(names), features))
    append_head(model, names, weight, np.zeros(len(names)))


def append_head(model: Any, names: Sequence[str], weight: np.ndarray, bias: np.ndarray) -> None:
    """Grow ``model.classifier`` by one output per category (logits 2.., named "category:NAME" in config)."""
    import torch

    old = model.classifier
    if old.out_features != 2:
        raise ValueError(f"the classifier already has {old.out_features} outputs; categories extend a 2-label head")
    new = torch.nn.Linear(old.in_features, 2 + len(names), dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight[:2] = old.weight
        new.bias[:2] = old.bias
        new.weight[2:] = torch.from_numpy(weight).to(old.weight.dtype)
        new.bias[2:] = torch.from_numpy(bias).to(old.weight.dtype)
    model.classifier = new
    labels = {i: model.config.id2label[i] for i in range(2)}
    labels.update({2 + i: f"{LABEL_PREFIX}{name}" for i, name in enumerate(names)})
    model.config.id2label = labels
    model.config.label2id = {v: k for k, v in labels.items()}


def plan_categories(splits: Any, spec: CategoriesRecipe) -> dict[str, Any]:
    """Which categories a run trains (``supported`` on its train and dev splits), with every category's counts:
    the start of the training record's ``categories``."""
    train = category_targets(splits["train"])
    names, counts = supported(train, category_targets(splits["dev"]), spec)
    if not names:
        log.warning("no category has %d train and %d dev rows: the model gets no category head",
                    spec.min_train_rows, spec.min_dev_rows)
    kept = [NAMES.index(n) for n in names]
    return {"names": names, "rows": counts, "rule": THRESHOLD_RULE, "weight": spec.weight,
            "balance": spec.balance, "pos_weight": positive_weights(train[0][:, kept], train[1], spec.balance),
            "min_train_rows": spec.min_train_rows, "min_dev_rows": spec.min_dev_rows}


def calibrate_categories(model: Any, tokenizer: Any, encoder: Any, dev: Any, plan: dict[str, Any], batch_size: int,
                         progress: bool = True) -> dict[str, Any]:
    """``plan`` with each trained category's dev threshold and dev figures: what the training record keeps."""
    from guard_sdk.training.evaluate import calibrate, metrics, score_torch_categories

    names = plan["names"]
    if not names:
        return {**plan, "thresholds": {}, "dev": {}}
    targets, known = category_targets(dev, names)
    rows = dev.select(np.flatnonzero(known))
    log.info("category head: scoring %d dev rows ...", len(rows))
    scores = score_torch_categories(model, tokenizer, encoder, rows["prompt"], rows["response"], batch_size,
                                    progress)[1]
    truth = targets[known]
    thresholds, figures = {}, {}
    for i, name in enumerate(names):
        thresholds[name] = calibrate(truth[:, i], scores[:, i], "max_f1")
        figures[name] = metrics(truth[:, i], scores[:, i], thresholds[name])
        log.info("category %s: threshold %.3f, dev F1 %.3f (%d unsafe train rows)", name, thresholds[name],
                 figures[name]["f1"] or 0, plan["rows"][name]["train"])
    return {**plan, "thresholds": thresholds, "dev": figures}
