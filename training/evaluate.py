"""Quality of a guard on labelled data: precision, recall, F1, AUPRC and false-positive rate at a threshold,
overall, per level (prompt / response) and per source; as JSON and as a markdown table.

Scores come from a guard bundle through the runtime (any backend it loads) or from a PyTorch checkpoint,
so the figures of a bundle and of the model it was exported from can be set side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from guard_sdk.training.shards import write_json

CHUNK = 64
METRICS = ("n", "unsafe", "precision", "recall", "f1", "auprc", "fpr", "accuracy")


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else float(num / den)


def metrics(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray,
            threshold: float) -> dict[str, float | int | None]:
    """The figures at ``threshold`` (unsafe when score >= threshold); None where one is undefined.

    Precision needs a flagged row, recall and AUPRC an unsafe row, FPR a safe row: a source that holds only
    safe rows has an FPR and no recall, and the table says so rather than printing a 0.
    """
    from sklearn.metrics import average_precision_score, confusion_matrix

    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    (tn, fp), (fn, tp) = confusion_matrix(y, s >= threshold, labels=[0, 1])
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = None if precision is None or recall is None or precision + recall == 0 else 2 * precision * recall / (
        precision + recall)
    return {
        "n": int(len(y)),
        "unsafe": int(y.sum()),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auprc": float(average_precision_score(y, s)) if y.any() else None,
        "fpr": _ratio(fp, fp + tn),
        "accuracy": _ratio(tp + tn, len(y)),
    }


def report(
    labels: Sequence[int], scores: Sequence[float], sources: Sequence[str], levels: Sequence[str], threshold: float
) -> dict[str, Any]:
    """Metrics overall, per level and per source, with the threshold they were taken at."""
    y, s = np.asarray(labels), np.asarray(scores)

    def by(keys: Sequence[str]) -> dict[str, Any]:
        k = np.asarray(keys)
        return {name: metrics(y[k == name], s[k == name], threshold) for name in sorted(set(keys))}

    return {"threshold": threshold, "overall": metrics(y, s, threshold), "by_level": by(levels),
            "by_source": by(sources)}


def _cell(value: float | int | None, name: str) -> str:
    if value is None:
        return "–"
    return str(value) if name in ("n", "unsafe") else f"{value:.3f}"


def to_markdown(result: dict[str, Any], title: str) -> str:
    """One table: overall, then each level, then each source."""
    head = "| rows | " + " | ".join(METRICS) + " |\n|---|" + "---|" * len(METRICS) + "\n"
    lines = [("**all**", result["overall"])]
    lines += [(f"level: {name}", m) for name, m in result["by_level"].items()]
    lines += [(f"`{name}`", m) for name, m in result["by_source"].items()]
    body = "".join(f"| {name} | " + " | ".join(_cell(m[k], k) for k in METRICS) + " |\n" for name, m in lines)
    categories = "\n" + category_markdown(result["categories"]) if result.get("categories") else ""
    return f"#### {title} (unsafe when P(unsafe) >= {result['threshold']:.4g})\n\n{head}{body}{categories}"


def calibrate(labels: Sequence[int], scores: Sequence[float], rule: str, threshold: float | None = None,
              max_fpr: float | None = None, groups: Sequence[str] | None = None) -> float:
    """The decision threshold by ``rule``.

    ``max_f1``: among the cuts that give the best F1 on these rows, and keep their false-positive rate at or
    under ``max_fpr`` when one is given (a deployment's ceiling on false alarms), the lowest; the threshold is
    then put halfway to the next lower score, so that it keeps the same decisions here and a margin against the
    small shifts int8 brings. With ``groups`` (each row's source), every group weighs the same in F1 and the
    false-positive rate (each row 1 / its group's size): a dev split whose safe rows are mostly one easy source
    would otherwise hold the ceiling on average while the other kinds of traffic see several times the false
    alarms.
    ``fixed``: ``threshold`` as given.
    """
    if rule == "fixed":
        if threshold is None:
            raise ValueError("rule fixed needs a threshold")
        return float(threshold)
    if rule != "max_f1":
        raise ValueError(f"unknown calibration rule {rule!r}")
    y, s = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
    if not y.any() or y.all():
        raise ValueError("max_f1 calibration needs both safe and unsafe rows")
    w = np.ones(len(y))
    if groups is not None:
        _, group, sizes = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
        w = 1.0 / sizes[group]
    order = np.argsort(-s, kind="stable")
    ranked, hits, weight = s[order], y[order], w[order]
    last = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))  # each distinct score's last row
    tp, flagged = np.cumsum(hits * weight)[last], np.cumsum(weight)[last]
    unsafe = (y * w).sum()
    f1 = 2 * tp / (flagged + unsafe)
    fpr = (flagged - tp) / (w.sum() - unsafe)
    allowed = np.ones_like(f1, dtype=bool) if max_fpr is None else fpr <= max_fpr + 1e-12
    if not allowed.any():
        raise ValueError(f"no cut keeps the false-positive rate at or under {max_fpr}")
    best_f1 = f1[allowed].max()
    pick = int(np.flatnonzero(allowed & (f1 >= best_f1 - 1e-12))[-1])  # the lowest cut among the best
    best = float(ranked[last[pick]])
    below = s[s < best]
    return (best + float(below.max())) / 2 if below.size else best


def levels_of(dataset: Any) -> list[str]:
    return ["prompt" if r is None else "response" for r in dataset["response"]]


def verdicts_with_guard(guard: Any, dataset: Any, progress: bool = True) -> list[Any]:
    """The Verdict of every row through a loaded Guard (its windows, its backend)."""
    from tqdm import tqdm

    prompts, responses = dataset["prompt"], dataset["response"]
    verdicts: list[Any] = []
    for start in tqdm(range(0, len(prompts), CHUNK), desc="scoring", unit="batch", disable=not progress):
        verdicts += guard.classify_batch(prompts[start : start + CHUNK], responses[start : start + CHUNK])
    return verdicts


def score_with_guard(guard: Any, dataset: Any, progress: bool = True) -> np.ndarray:
    """P(unsafe) of every row through a loaded Guard (its windows, its backend)."""
    return np.asarray([v.score for v in verdicts_with_guard(guard, dataset, progress)])


CONFUSION_TOP = 6  # categories in the confusion table: the most frequent in the data


def category_report(dataset: Any, scores: Sequence[dict[str, float]], thresholds: dict[str, float]
                    ) -> dict[str, Any] | None:
    """Per category a guard scores: precision, recall, F1, AUPRC and FPR at its threshold, over the rows whose
    categories the data knows (training/data/taxonomy.py; a safe row is known: none), and a confusion table of
    the most frequent categories: for each unsafe row of exactly one known category, the category the guard
    scores highest. None where no unsafe row of the data has a category the guard scores."""
    from guard_sdk.training.categories import category_targets

    names = list(thresholds)
    targets, known = category_targets(dataset, names)
    if not targets[known].any():
        return None
    matrix = np.array([[row[n] for n in names] for row in scores])
    by_category = {n: metrics(targets[known, j], matrix[known, j], thresholds[n])
                   for j, n in enumerate(names) if targets[known, j].any()}
    single = known & (targets.sum(axis=1) == 1)
    truth, said = targets[single].argmax(axis=1), matrix[single].argmax(axis=1)
    top = [int(j) for j in np.argsort(-targets[single].sum(axis=0), kind="stable")[:CONFUSION_TOP]
           if targets[single, j].any()]
    counts = [[int(np.sum((truth == t) & (said == p))) for p in top] + [int(np.sum((truth == t) & ~np.isin(said, top)))]
              for t in top]
    return {"by_category": by_category, "rows": int(known.sum()),
            "confusion": {"categories": [names[j] for j in top], "counts": counts}}


def category_markdown(result: dict[str, Any]) -> str:
    """The per-category table and the confusion table of ``category_report``."""
    head = "| category | " + " | ".join(METRICS) + " |\n|---|" + "---|" * len(METRICS) + "\n"
    body = "".join(f"| {name} | " + " | ".join(_cell(m[k], k) for k in METRICS) + " |\n"
                   for name, m in result["by_category"].items())
    c = result["confusion"]
    matrix = "| true \\ highest-scored | " + " | ".join(c["categories"]) + " | other |\n|---|" + "---|" * (
        len(c["categories"]) + 1) + "\n"
    matrix += "".join(f"| {name} | " + " | ".join(map(str, row)) + " |\n"
                      for name, row in zip(c["categories"], c["counts"]))
    return (f"#### Per category ({result['rows']:,} rows whose categories are known; each at its own threshold)\n\n"
            f"{head}{body}\n#### Confusion of the most frequent categories (unsafe rows of one known category)"
            f"\n\n{matrix}")


class Scorer:
    """``score(prompts, responses) -> P(unsafe)`` that keeps each text's category scores too (``categories``, by
    (prompt, response)), for a report per category at ``thresholds`` (empty for a model without categories) and
    for a teacher's ``violations``."""

    def __init__(self, thresholds: dict[str, float]) -> None:
        self.thresholds = thresholds
        self.categories: dict[tuple[str, str | None], dict[str, float]] = {}

    def violations(self, prompt: str, response: str | None) -> tuple[str, ...]:
        """The categories of a text scored before that are over their thresholds, most confident first."""
        from guard_sdk.policy import over_thresholds

        return over_thresholds(self.categories[(prompt, response)], self.thresholds)


class GuardScorer(Scorer):
    """``Scorer`` of a loaded Guard, through the runtime."""

    def __init__(self, guard: Any, progress: bool = True) -> None:
        super().__init__({c.name: c.threshold for c in guard.manifest.categories})
        self.guard, self.progress = guard, progress

    def __call__(self, prompts: Sequence[str], responses: Sequence[str | None]) -> np.ndarray:
        verdicts = verdicts_with_guard(self.guard, {"prompt": list(prompts), "response": list(responses)},
                                       self.progress)
        if self.thresholds:
            self.categories.update(((p, r), v.categories) for p, r, v in zip(prompts, responses, verdicts))
        return np.asarray([v.score for v in verdicts])


def guard_scorer(guard: Any, progress: bool = True) -> GuardScorer:
    return GuardScorer(guard, progress)


class CheckpointScorer(Scorer):
    """``Scorer`` of a PyTorch checkpoint, windowed as a bundle of ``max_length`` would be; its categories'
    thresholds are those its training record calibrated."""

    def __init__(self, checkpoint: str | Path, max_length: int, batch_size: int = CHUNK,
                 progress: bool = True) -> None:
        import tempfile

        from guard_sdk.export.checkpoint import bundle_encoder, category_heads, load_checkpoint, training_record

        self.model, self.tokenizer = load_checkpoint(checkpoint)
        with tempfile.TemporaryDirectory() as scratch:
            self.encoder = bundle_encoder(self.tokenizer, Path(scratch), max_length)
        self.heads = category_heads(self.model.config, training_record(checkpoint))
        super().__init__({h.name: h.threshold for h in self.heads})
        self.batch_size, self.progress = batch_size, progress

    def __call__(self, prompts: Sequence[str], responses: Sequence[str | None]) -> np.ndarray:
        from guard_sdk.guard import LABEL_OUTPUTS

        scores, categories = score_torch_categories(self.model, self.tokenizer, self.encoder, prompts, responses,
                                                    self.batch_size, self.progress)
        if self.heads:
            self.categories.update(((p, r), {h.name: float(c[h.index - LABEL_OUTPUTS]) for h in self.heads})
                                   for p, r, c in zip(prompts, responses, categories))
        return scores


def score_with_checkpoint(
    checkpoint: str | Path, dataset: Any, max_length: int, batch_size: int = CHUNK, progress: bool = True
) -> np.ndarray:
    """P(unsafe) of every row through a PyTorch sequence classifier, on the windows a bundle of
    ``max_length`` would score, the most unsafe window deciding (as the runtime does)."""
    return checkpoint_scorer(checkpoint, max_length, batch_size, progress)(dataset["prompt"], dataset["response"])


def checkpoint_scorer(checkpoint: str | Path, max_length: int, batch_size: int = CHUNK,
                      progress: bool = True) -> CheckpointScorer:
    """``score(prompts, responses) -> P(unsafe)`` of a loaded checkpoint, windowed as a bundle of ``max_length``."""
    return CheckpointScorer(checkpoint, max_length, batch_size, progress)


def score_torch(model: Any, tokenizer: Any, encoder: Any, prompts: Sequence[str], responses: Sequence[str | None],
                batch_size: int = CHUNK, progress: bool = True) -> np.ndarray:
    """P(unsafe) per text from a PyTorch model through the runtime's windows (``score_torch_categories``)."""
    return score_torch_categories(model, tokenizer, encoder, prompts, responses, batch_size, progress)[0]


def score_torch_categories(model: Any, tokenizer: Any, encoder: Any, prompts: Sequence[str],
                           responses: Sequence[str | None], batch_size: int = CHUNK,
                           progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(P(unsafe) per text, P(category) per text and category output) from a PyTorch model, as the runtime
    scores them: its windows, the most unsafe window's P(unsafe), each category's highest window; ``CHUNK`` texts
    at a time."""
    from tqdm import tqdm

    from guard_sdk.export.checkpoint import model_inputs, unsafe_index
    from guard_sdk.export.parity import torch_runner
    from guard_sdk.guard import (
        LABEL_OUTPUTS,
        category_probability,
        highest_per_text,
        most_unsafe_window,
        run_windows,
        unsafe_probability,
    )

    run, inputs, unsafe = torch_runner(model.eval()), model_inputs(model, tokenizer), unsafe_index(model.config)
    columns = range(LABEL_OUTPUTS, model.config.num_labels)
    scores, categories = np.empty(len(prompts)), np.empty((len(prompts), len(columns)))
    for start in tqdm(range(0, len(prompts), CHUNK), desc="scoring", unit="batch", disable=not progress):
        chunk = range(start, min(start + CHUNK, len(prompts)))
        windows = [w for i in chunk for w in encoder.windows(prompts[i], responses[i], owner=i - start)]
        logits = run_windows(run, windows, encoder.text.pad_id, inputs, batch_size)
        scores[chunk.start : chunk.stop] = most_unsafe_window(windows, unsafe_probability(logits, unsafe),
                                                              len(chunk))[0]
        categories[chunk.start : chunk.stop] = highest_per_text(windows, category_probability(logits, columns),
                                                                len(chunk))
    return scores, categories


def write_report(result: dict[str, Any], out_dir: str | Path, stem: str, title: str) -> tuple[Path, Path]:
    """``stem``.json and ``stem``.md under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    write_json(json_path, result, allow_nan=False)  # whole or absent: `guard-sdk ablation` reads it back
    md_path.write_text(to_markdown(result, title), encoding="utf-8")
    return json_path, md_path
