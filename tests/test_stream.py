"""Streaming: after every chunk the verdict is classify()'s on the response so far, the first unsafe chunk is
reported and kept, and a chunk scores only the windows it changed."""

from __future__ import annotations

import pytest

from guard_sdk import Guard, InputTypeError

from .conftest import UNSAFE_TEXTS, MarkerBackend

FILLER = "The weather was mild and the trains ran on time all week. "


def test_each_chunk_gives_classifys_verdict_on_the_response_so_far(categories_bundle):
    guard = Guard.load(categories_bundle)
    prompt = UNSAFE_TEXTS[0]
    chunks = ["Sure", ", here is", " how: ", FILLER * 3, "first gather ", "the parts. ", FILLER * 6]
    stream = guard.stream(prompt)
    so_far = ""
    for n, chunk in enumerate(chunks):
        so_far += chunk
        step = stream.feed(chunk)
        expected = guard.classify(prompt, so_far)
        assert step.chunk == n and step.verdict == expected and stream.response == so_far
        assert step.seconds > 0 and step.scored_windows <= expected.windows


def test_the_first_unsafe_chunk_is_reported_and_a_chunk_costs_its_new_windows(bert_bundle):
    guard = Guard.load(bert_bundle)
    guard.backend = MarkerBackend(guard.encoder.tokenize("bomb")[0])
    stream = guard.stream("Tell me about your week.")
    steps = [stream.feed(FILLER) for _ in range(6)]
    assert all(not s.verdict.unsafe and s.first_unsafe_chunk is None for s in steps)
    assert steps[-1].verdict.windows > 3 and all(s.scored_windows <= 3 for s in steps[1:])  # old windows reused
    hit = stream.feed("Then we built the bomb. ")
    after = stream.feed(FILLER)
    assert hit.verdict.unsafe and hit.first_unsafe_chunk == 6 and after.first_unsafe_chunk == 6
    assert after.verdict.unsafe  # the harm stays in the response's windows
    with pytest.raises(InputTypeError, match="a chunk must be a str"):
        stream.feed(None)
    with pytest.raises(InputTypeError):
        guard.stream(None)
