"""A linear probe: fit only the classification head of a sequence classifier, in closed form.

The cheapest guard a pretrained encoder can become, in seconds on a CPU: the encoder stays frozen, its
pooled features feed a ridge regression on ±1 labels, and the solution is written into the model's
``classifier`` layer so the checkpoint exports like any other. It gives the end-to-end demo and the
tests a model whose scores mean something. Our own few lines of numpy, not scikit-learn: one linear
solve does not justify the dependency, and the result must land in the PyTorch layer anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def pooled_features(model: Any, tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int) -> np.ndarray:
    """What the model's ``classifier`` layer sees for each text (its input, captured by a hook)."""
    import torch

    head = getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Linear):
        raise ValueError(f"{type(model).__name__} has no linear `classifier` layer to fit")
    captured: list[np.ndarray] = []
    hook = head.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0].detach().float().numpy()))
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(list(texts[start : start + batch_size]), truncation=True, max_length=max_length,
                                  padding=True, return_tensors="pt")
                model(**batch)
    finally:
        hook.remove()
    return np.concatenate(captured)


def fit_linear_head(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    ridge: float,
    sharpness: float,
    max_length: int,
    batch_size: int,
) -> None:
    """Set ``model.classifier`` so that P(unsafe = label 1) = sigmoid(sharpness · ridge score).

    ``ridge`` is the L2 penalty of the regression on ±1 targets; ``sharpness`` scales the logit, since
    a ridge score near ±1 should read as a confident probability.
    """
    import torch

    y = np.where(np.asarray(labels) == 1, 1.0, -1.0)
    if len(set(y)) != 2:
        raise ValueError("fit_linear_head needs both safe (0) and unsafe (1) examples")
    x = pooled_features(model, tokenizer, texts, max_length, batch_size).astype(np.float64)
    # Standardise so that the penalty weighs every feature alike, then fold the scaling into the layer.
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-8
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.linalg.solve(z.T @ z + ridge * np.eye(z.shape[1]), z.T @ y)
    weight = w[:-1] / scale
    bias = w[-1] - weight @ mean
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.weight[1] = torch.from_numpy(sharpness * weight).float()
        model.classifier.bias[1] = float(sharpness * bias)
    model.config.id2label = {0: "safe", 1: "unsafe"}
    model.config.label2id = {"safe": 0, "unsafe": 1}
