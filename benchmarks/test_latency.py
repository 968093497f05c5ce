"""Latency at batch 1 over bundle × backend × precision × length × threads, and batch-8 throughput."""

from __future__ import annotations

import pytest

from guard_sdk.bench.inputs import text_of_tokens
from guard_sdk.guard import Guard

ROUNDS, WARMUP = 50, 5
_thread_pools: dict[str, int | None] = {}  # the setting a backend's pool was first sized for (None: default)


def _guard(artifact: tuple[str, str, str], threads: int | None) -> Guard:
    bundle, backend, precision = artifact
    if backend == "executorch" and _thread_pools.setdefault(backend, threads) != threads:
        pytest.skip("ExecuTorch sizes its thread pool once per process; guard-sdk bench measures each thread "
                    "count in a process of its own")
    return Guard.load(bundle, backend=backend, precision=precision, threads=threads)


def test_latency_batch_1(benchmark, artifact, tokens, threads):
    guard = _guard(artifact, threads)
    texts = [text_of_tokens(guard.encoder, tokens)]
    benchmark.extra_info.update(tokens=tokens, threads=threads, threads_used=guard.threads,
                                windows=len(guard.encoder.windows(texts[0])))
    verdicts = benchmark.pedantic(guard.classify_batch, args=(texts,), rounds=ROUNDS, warmup_rounds=WARMUP,
                                  iterations=1)
    assert len(verdicts) == 1


@pytest.mark.parametrize("batch", [8])
def test_throughput_batch_8(benchmark, artifact, threads, batch):
    guard = _guard(artifact, threads)
    texts = [text_of_tokens(guard.encoder, 128)] * batch
    benchmark.extra_info.update(tokens=128, threads=threads, threads_used=guard.threads, batch=batch)
    verdicts = benchmark.pedantic(guard.classify_batch, args=(texts,), rounds=ROUNDS // 5, warmup_rounds=1,
                                  iterations=1)
    assert len(verdicts) == batch
