"""One benchmark configuration, measured in a process of its own: ``python -m guard_sdk.bench.worker JSON``
prints one JSON record. Its own process, because peak memory is per process and a backend's thread pool is
sized once per process (ExecuTorch's cannot be resized), so one configuration must not run after another.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guard_sdk.bench.inputs import text_of_tokens
from guard_sdk.bench.stats import latency_stats

if TYPE_CHECKING:
    from guard_sdk.guard import Guard
    from guard_sdk.tokenization import Window


@dataclass(frozen=True)
class Config:
    bundle: str
    backend: str
    precision: str
    threads: int | None  # intra-op threads; None: the runtime's default, as Guard.load(threads=None) picks it
    tokens: int  # length of each input in tokens, across its windows
    batch: int  # inputs per classify_batch call
    warmup: int  # untimed calls after the first
    runs: int  # timed calls
    reference: str | None = None  # "transformers" or "optimum": that library's pipeline instead of our runtime
    checkpoint: str | None = None  # the PyTorch checkpoint a reference runs (the bundle's source)


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


def raw_session(guard: Guard, windows: list[Window]) -> Callable[[], object] | None:
    """For an onnxruntime guard, a call that runs a second session (the runtime's backend class, so the same
    session options, at the guard's thread count) on ``windows``, pre-tokenized and padded per call as the
    runtime batches them; None for other backends."""
    if guard.backend.name != "onnxruntime":
        return None
    from guard_sdk.backends.onnxruntime import OnnxRuntimeBackend
    from guard_sdk.tokenization import pad_batch

    m, step = guard.manifest, guard.batch_size
    session = OnnxRuntimeBackend(guard.path / guard.artifact.path, guard.threads, m.output, m.inputs)
    feeds = [pad_batch(windows[i : i + step], m.text.pad_id, m.inputs) for i in range(0, len(windows), step)]

    def run() -> None:
        for feed in feeds:
            session.run(feed)

    return run


def _time_calls(call: Callable[[], object], config: Config) -> tuple[float, list[float]]:
    """The first call's seconds, then the seconds of ``config.runs`` calls after ``config.warmup``."""
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    for _ in range(config.warmup):
        call()
    timings = []
    for _ in range(config.runs):
        start = time.perf_counter()
        call()
        timings.append(time.perf_counter() - start)
    return first, timings


def measure_reference(config: Config) -> dict[str, Any]:
    """What other tools run for the same job, on the same text: transformers' text-classification pipeline on
    the PyTorch checkpoint, or that pipeline on optimum's ORTModelForSequenceClassification (what LLM Guard
    runs; the model is exported to ONNX at load). One window only: the pipelines truncate."""
    from guard_sdk.bundle import read_manifest
    from guard_sdk.tokenization import TextEncoder

    if config.threads is None or config.checkpoint is None:  # run.plan_references names both
        raise ValueError("a reference runs on a checkpoint at an explicit thread count")
    threads, checkpoint = config.threads, config.checkpoint
    rss_before = peak_rss_bytes()
    start = time.perf_counter()
    import torch
    from transformers import AutoTokenizer, pipeline

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    if config.reference == "transformers":
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    else:
        import onnxruntime as ort
        from optimum.onnxruntime import ORTModelForSequenceClassification

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        model = ORTModelForSequenceClassification.from_pretrained(checkpoint, export=True,
                                                                  session_options=options)
    manifest = read_manifest(Path(config.bundle))
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu", truncation=True,
                        max_length=manifest.max_length)
    load_s = time.perf_counter() - start
    encoder = TextEncoder(Path(config.bundle) / manifest.tokenizer.path, manifest.max_length, manifest.text)
    texts = [text_of_tokens(encoder, config.tokens)] * config.batch
    tokens = len(tokenizer(texts[0], truncation=True, max_length=manifest.max_length)["input_ids"])
    first_s, timings = _time_calls(lambda: classify(texts, batch_size=config.batch), config)
    stats = latency_stats(timings)
    weights = sum(p.stat().st_size for p in Path(checkpoint).glob("*.safetensors"))
    return {
        "config": asdict(config),
        "artifact": {"path": str(checkpoint), "format": "pytorch" if config.reference == "transformers"
                     else "onnx (optimum export)", "precision": "fp32", "bytes": weights},
        "backend": f"{config.reference} pipeline", "tokens_per_input": tokens, "windows_per_input": 1,
        "window_lengths": [tokens], "load_ms": load_s * 1e3, "first_call_ms": first_s * 1e3, "latency": stats,
        "inputs_per_s": config.batch / (stats["trimmed_mean_ms"] / 1e3), "threads_used": config.threads,
        "raw_session": None,
        "over_raw_session": None, "peak_rss_bytes": peak_rss_bytes(), "rss_before_load_bytes": rss_before,
    }


def measure(config: Config) -> dict[str, Any]:
    """Cold load, first call, then ``runs`` timed calls after ``warmup``; peak memory of this process."""
    if config.reference is not None:
        return measure_reference(config)
    rss_before = peak_rss_bytes()
    start = time.perf_counter()
    from guard_sdk.guard import Guard  # the import is part of a cold start

    guard = Guard.load(config.bundle, backend=config.backend, precision=config.precision, threads=config.threads)
    load_s = time.perf_counter() - start
    texts = [text_of_tokens(guard.encoder, config.tokens)] * config.batch
    windows = guard.encoder.windows(texts[0])
    start = time.perf_counter()
    guard.classify_batch(texts)
    first_s = time.perf_counter() - start
    peak_rss = peak_rss_bytes()  # the runtime's own: taken before the raw session below loads a second copy
    raw = raw_session(guard, [w for t in texts for w in guard.encoder.windows(t)])
    for _ in range(config.warmup):
        guard.classify_batch(texts)
        if raw:
            raw()
    # Round robin with the raw session, so drift on a shared machine hits both alike.
    timings, raw_timings = [], []
    for _ in range(config.runs):
        start = time.perf_counter()
        guard.classify_batch(texts)
        timings.append(time.perf_counter() - start)
        if raw:
            start = time.perf_counter()
            raw()
            raw_timings.append(time.perf_counter() - start)
    stats = latency_stats(timings)
    floor = latency_stats(raw_timings) if raw_timings else None
    return {
        "config": asdict(config),
        "artifact": {"path": guard.artifact.path, "format": guard.artifact.format,
                     "precision": guard.artifact.precision, "bytes": guard.artifact.bytes},
        "backend": guard.backend.name,
        "threads_used": guard.threads,  # what the runtime chose where config.threads is None
        "tokens_per_input": sum(len(w.input_ids) for w in windows),
        "windows_per_input": len(windows),
        "window_lengths": [len(w.input_ids) for w in windows],
        "load_ms": load_s * 1e3,
        "first_call_ms": first_s * 1e3,
        "latency": stats,
        "inputs_per_s": config.batch / (stats["trimmed_mean_ms"] / 1e3),
        # onnxruntime: a bare InferenceSession.run on the same windows, already tokenized and padded, in the
        # runtime's per-call batches: the floor under our tokenization, windowing and scoring.
        "raw_session": floor,
        "over_raw_session": stats["p50_ms"] / floor["p50_ms"] if floor else None,
        "peak_rss_bytes": peak_rss,  # after load and the first call, whose shapes every later call repeats
        "rss_before_load_bytes": rss_before,
    }


def main(argv: list[str]) -> int:
    config = Config(**json.loads(argv[0]))
    print(json.dumps(measure(config)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
