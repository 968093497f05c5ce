"""Latency statistics as ExecuTorch's benchmark app and ONNX Runtime's perf test report them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TRIM = 0.1  # the trimmed mean drops this share of samples at each end: one slow outlier should not move it


def trimmed_mean(values: Sequence[float] | np.ndarray, trim: float = TRIM) -> float:
    """Mean of the sorted values without ``trim`` of them at each end (our own lines: scipy's trim_mean
    is the same, and the runtime does not depend on scipy)."""
    v = np.sort(np.asarray(values, dtype=float))
    cut = int(len(v) * trim)
    return float(v[cut : len(v) - cut].mean())


def latency_stats(seconds: Sequence[float]) -> dict[str, float | int]:
    """p50, p90, p99, trimmed mean, mean, min and max of timings in seconds, in milliseconds; n samples."""
    if len(seconds) == 0:
        raise ValueError("no timings")
    ms = np.asarray(seconds, dtype=float) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"n": int(len(ms)), "p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99),
            "trimmed_mean_ms": trimmed_mean(ms), "mean_ms": float(ms.mean()), "min_ms": float(ms.min()),
            "max_ms": float(ms.max())}
