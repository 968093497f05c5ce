"""The category head: P(category) for each harm of the taxonomy (docs/taxonomy.md) that a model's data supports,
multi-label (a text can be hate and violence at once), beside P(unsafe).

It is fitted after the unsafe head, on the trained encoder's pooled features with the encoder frozen: a logistic
regression per category, all in one linear layer. P(unsafe), its threshold and the model's speed therefore stay as
they were (the classifier gains a few rows). The layer is appended to the model's classifier: logits 0 and 1 stay
the unsafe head's and logits 2.. are the categories' (config.id2label names them "category:NAME"), so every
exporter, the parity check and every runtime carry them without a graph of their own.

Which rows teach it: a safe row says "no category"; an unsafe row whose source names a category of the taxonomy
says "these"; an unsafe row whose source names none is left out. Each row is read on its most unsafe window, the
one whose P(unsafe) decides the verdict. A category is scored only with ``min_train_rows`` unsafe train rows and
``min_dev_rows`` dev rows of it; the others are listed as unsupported. Each one's threshold is the best F1 on the
dev rows whose categories are known (``calibrate``'s max_f1 rule, per category).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from guard_sdk.categories import LABEL_PREFIX, NAMES
from guard_sdk.training.data.taxonomy import categories_of
from guard_sdk.training.recipe import CategoriesRecipe

log = logging.getLogger(__name__)

THRESHOLD_RULE = "max_f1 per category on the dev rows whose categories are known"
LBFGS_STEPS = 200


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


def feature_runner(model: Any) -> Any:
    """``run(feeds) -> [logits | pooled features]`` of a PyTorch sequence classifier: its outputs, then what its
    linear ``classifier`` layer reads (captured by a hook), one row per window."""
    import torch

    head = getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Linear):
        raise ValueError(f"{type(model).__name__} has no linear `classifier` layer to extend with categories")
    captured: list[torch.Tensor] = []

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        hook = head.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0]))
        try:
            with torch.inference_mode():
                logits = model(**{k: torch.from_numpy(v).to(model.device) for k, v in feeds.items()}).logits
        finally:
            hook.remove()
        return torch.cat([logits, captured.pop()], dim=1).float().cpu().numpy()

    return run


def window_features(model: Any, encoder: Any, inputs: list[str], unsafe: int, prompts: Sequence[str],
                    responses: Sequence[str | None], batch_size: int, progress: bool = True) -> np.ndarray:
    """Each row's pooled features on its most unsafe window, as the runtime windows it."""
    from tqdm import tqdm

    from guard_sdk.guard import LABEL_OUTPUTS, most_unsafe_window, run_windows, unsafe_probability

    run = feature_runner(model.eval())
    rows: list[np.ndarray] = []
    chunk = 64
    for start in tqdm(range(0, len(prompts), chunk), desc="features", unit="batch", disable=not progress):
        texts = range(start, min(start + chunk, len(prompts)))
        windows = [w for i in texts for w in encoder.windows(prompts[i], responses[i], owner=i - start)]
        out = run_windows(run, windows, encoder.text.pad_id, inputs, batch_size)
        logits = out[:, : model.config.num_labels]
        scores = unsafe_probability(logits[:, :LABEL_OUTPUTS], unsafe)
        best = most_unsafe_window(windows, scores, len(texts))[0]
        owners = np.array([w.owner for w in windows])
        for i in range(len(texts)):  # the first window of the row that scores its best
            pick = np.flatnonzero((owners == i) & (scores == best[i]))[0]
            rows.append(out[pick, model.config.num_labels :])
    return np.stack(rows) if rows else np.empty((0, 0), dtype=np.float32)


def fit_head(features: np.ndarray, targets: np.ndarray, l2: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(weight [categories × features], bias) of a multi-label logistic regression: the mean binary cross-entropy
    plus ``l2`` × the squared weights, fitted full-batch by L-BFGS on standardised features (the scaling is folded
    back into the layer). Ours rather than scikit-learn's: one small torch problem, whose result must land in the
    model's layer anyway."""
    import torch

    torch.manual_seed(seed)
    x = features.astype(np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = torch.from_numpy((x - mean) / scale)
    y = torch.from_numpy(targets.astype(np.float64))
    w = torch.zeros((z.shape[1], y.shape[1]), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(y.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=LBFGS_STEPS, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y) + l2 * (w * w).sum()
        value.backward()
        return value

    optimizer.step(loss)
    weight = w.detach().numpy().T / scale
    bias = b.detach().numpy() - weight @ mean
    return weight, bias


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


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


def fit_categories(model: Any, tokenizer: Any, encoder: Any, splits: Any, spec: CategoriesRecipe, batch_size: int,
                   progress: bool = True) -> dict[str, Any]:
    """Fit, calibrate and append the category head to ``model``; return what the training record keeps of it."""
    from guard_sdk.export.checkpoint import model_inputs, unsafe_index
    from guard_sdk.training.evaluate import calibrate, metrics

    train_t, dev_t = category_targets(splits["train"]), category_targets(splits["dev"])
    names, counts = supported(train_t, dev_t, spec)
    record: dict[str, Any] = {"names": names, "rows": counts, "rule": THRESHOLD_RULE,
                              "min_train_rows": spec.min_train_rows, "min_dev_rows": spec.min_dev_rows}
    if not names:
        log.warning("no category has %d train and %d dev rows: the model gets no category head",
                    spec.min_train_rows, spec.min_dev_rows)
        return {**record, "thresholds": {}, "dev": {}}
    columns = [NAMES.index(n) for n in names]
    inputs, unsafe = model_inputs(model, tokenizer), unsafe_index(model.config)

    def features(split: str, known: np.ndarray) -> np.ndarray:
        ds = splits[split].select(np.flatnonzero(known))
        log.info("category head: features of %d %s rows ...", len(ds), split)
        return window_features(model, encoder, inputs, unsafe, ds["prompt"], ds["response"], batch_size, progress)

    x_train, x_dev = features("train", train_t[1]), features("dev", dev_t[1])
    y_train, y_dev = train_t[0][train_t[1]][:, columns], dev_t[0][dev_t[1]][:, columns]
    weight, bias = fit_head(x_train, y_train, spec.l2)
    dev_scores = sigmoid(x_dev @ weight.T + bias)
    thresholds, dev = {}, {}
    for i, name in enumerate(names):
        thresholds[name] = calibrate(y_dev[:, i], dev_scores[:, i], "max_f1")
        dev[name] = metrics(y_dev[:, i], dev_scores[:, i], thresholds[name])
        log.info("category %s: threshold %.3f, dev F1 %.3f (%d unsafe train rows)", name, thresholds[name],
                 dev[name]["f1"] or 0, counts[name]["train"])
    append_head(model, names, weight, bias)
    return {**record, "thresholds": thresholds, "dev": dev}
