"""What each artifact's precision costs in quality: its F1 and AUPRC on labelled rows at the bundle's
threshold, and how far its scores and decisions stray from the same format's fp32 artifact."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from guard_sdk.backends import BACKENDS, runs_here
from guard_sdk.bundle import read_manifest


def artifact_quality(bundle: str | Path, prompts: Sequence[str], responses: Sequence[str | None],
                     labels: Sequence[int], progress: bool = True) -> list[dict[str, Any]]:
    """One record per runnable artifact of ``bundle``; needs scikit-learn (guard-sdk[train]) for AUPRC."""
    from tqdm import tqdm

    from guard_sdk.guard import Guard
    from guard_sdk.training.evaluate import metrics

    manifest = read_manifest(Path(bundle))
    scored: list[tuple[Any, str, np.ndarray]] = []
    for artifact in manifest.artifacts:
        backend = next((b for b, info in BACKENDS.items() if info.format == artifact.format and runs_here(b)), None)
        if backend is None:
            continue
        guard = Guard.load(bundle, backend=backend, precision=artifact.precision)
        scores: list[float] = []
        for start in tqdm(range(0, len(prompts), 32), desc=f"quality {artifact.path}", disable=not progress):
            scores += [v.score for v in guard.classify_batch(list(prompts[start : start + 32]),
                                                             list(responses[start : start + 32]))]
        scored.append((artifact, backend, np.asarray(scores)))
    records = []
    for artifact, backend, values in scored:
        reference = next((s for a, _, s in scored if a.format == artifact.format and a.precision == "fp32"), None)
        m = metrics(labels, values, manifest.threshold)
        record = {"bundle": str(bundle), "artifact": artifact.path, "format": artifact.format,
                  "precision": artifact.precision, "backend": backend, "bytes": artifact.bytes, "rows": len(labels),
                  "f1": m["f1"], "auprc": m["auprc"], "fpr": m["fpr"]}
        if reference is not None:
            same = (values >= manifest.threshold) == (reference >= manifest.threshold)
            ref = metrics(labels, reference, manifest.threshold)
            record |= {"agreement_with_fp32": float(same.mean()),
                       "max_abs_diff_vs_fp32": float(np.abs(values - reference).max()),
                       "f1_change_vs_fp32": None if m["f1"] is None or ref["f1"] is None else m["f1"] - ref["f1"]}
        records.append(record)
    return records
