"""The latency a streamed response adds per chunk, side by side in one run: ``Guard.stream`` (only the changed
windows are scored) against ``classify`` of the whole response so far after every chunk, on the embedded guard.
`pytest benchmarks/test_stream.py` reports the mean time per chunk of each."""

from __future__ import annotations

import pytest

from guard_sdk.guard import Guard, default_bundle_path

PROMPT = "Can you explain how vaccines train the immune system?"
CHUNK = "Vaccines show the immune system a harmless piece of a pathogen, so it learns to recognise it. "  # ~20 tokens
CHUNKS = 40  # about 800 tokens of response: a dozen windows of the embedded guard by the end


@pytest.fixture(scope="module")
def guard() -> Guard:
    return Guard.load(default_bundle_path(), threads=1)


def _streamed(guard: Guard) -> int:
    stream = guard.stream(PROMPT)
    return sum(stream.feed(CHUNK).scored_windows for _ in range(CHUNKS))


def _rescored(guard: Guard) -> int:
    return sum(guard.classify(PROMPT, CHUNK * (n + 1)).windows for n in range(CHUNKS))


@pytest.mark.parametrize("how", ["stream", "classify_each_chunk"])
def test_per_chunk_latency(benchmark, guard, how):
    run = _streamed if how == "stream" else _rescored
    windows = benchmark.pedantic(run, args=(guard,), rounds=3, warmup_rounds=1, iterations=1)
    benchmark.extra_info.update(chunks=CHUNKS, windows_scored=windows,
                                ms_per_chunk=round(benchmark.stats.stats.mean * 1000 / CHUNKS, 3))
    assert windows > CHUNKS if how == "classify_each_chunk" else windows >= 1
