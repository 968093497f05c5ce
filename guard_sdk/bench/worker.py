"""One benchmark configuration, measured in a process of its own: ``python -m guard_sdk.bench.worker JSON``
prints one JSON record. Its own process, because peak memory is per process and a backend's thread pool is
sized once per process (ExecuTorch's cannot be resized), so one configuration must not run after another.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from guard_sdk.bench.inputs import text_of_tokens
from guard_sdk.bench.stats import latency_stats


@dataclass(frozen=True)
class Config:
    bundle: str
    backend: str
    precision: str
    threads: int
    tokens: int  # length of each input in tokens, across its windows
    batch: int  # inputs per classify_batch call
    warmup: int  # untimed calls after the first
    runs: int  # timed calls


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far. On Linux from /proc (VmHWM): getrusage's ru_maxrss there
    starts from the parent's peak after fork and exec, so a child would report its parent's memory."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS reports bytes, others KiB


def measure(config: Config) -> dict[str, Any]:
    """Cold load, first call, then ``runs`` timed calls after ``warmup``; peak memory of this process."""
    rss_before = peak_rss_bytes()
    start = time.perf_counter()
    from guard_sdk.guard import Guard  # the import is part of a cold start

    guard = Guard.load(config.bundle, backend=config.backend, precision=config.precision, threads=config.threads)
    load_s = time.perf_counter() - start
    texts = [text_of_tokens(guard.encoder, config.tokens)] * config.batch
    windows = [w for t in texts[:1] for w in guard.encoder.windows(t)]
    start = time.perf_counter()
    guard.classify_batch(texts)
    first_s = time.perf_counter() - start
    for _ in range(config.warmup):
        guard.classify_batch(texts)
    timings = []
    for _ in range(config.runs):
        start = time.perf_counter()
        guard.classify_batch(texts)
        timings.append(time.perf_counter() - start)
    stats = latency_stats(timings)
    return {
        "config": asdict(config),
        "artifact": {"path": guard.artifact.path, "format": guard.artifact.format,
                     "precision": guard.artifact.precision, "bytes": guard.artifact.bytes},
        "backend": guard.backend.name,
        "tokens_per_input": sum(len(w.input_ids) for w in windows),
        "windows_per_input": len(windows),
        "load_ms": load_s * 1e3,
        "first_call_ms": first_s * 1e3,
        "latency": stats,
        "inputs_per_s": config.batch / (stats["trimmed_mean_ms"] / 1e3),
        "peak_rss_bytes": peak_rss_bytes(),
        "rss_before_load_bytes": rss_before,
    }


def main(argv: list[str]) -> int:
    config = Config(**json.loads(argv[0]))
    print(json.dumps(measure(config)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
