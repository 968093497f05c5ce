"""The OpenAI-compatible client against a real server on 127.0.0.1 serving a tiny model in the same wire
format: same outputs as local transformers, bounded concurrency, retries with backoff and Retry-After,
timeouts, and calls from inside a running event loop."""

import asyncio
import contextlib
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import numpy as np
import pytest

from guard_sdk.training.harmaug.generators import Sampling, TransformersGenerator
from guard_sdk.training.harmaug.openai_client import (
    CompletionsClient,
    GenerationError,
    OpenAIGenerator,
    OpenAILlamaGuardTeacher,
    retry_after_seconds,
)
from guard_sdk.training.harmaug.teachers import LlamaGuardTeacher

from .conftest import SAFE_TEXTS, UNSAFE_TEXTS
from .openai_server import start


@contextlib.contextmanager
def serving(tiny_lm, **faults):
    server = start(*tiny_lm, **faults)
    try:
        yield server
    finally:  # stopped on failure too
        server.shutdown()
        server.server_close()


def test_generation_over_http_equals_local_greedy_generation(tiny_lm):
    texts = [f"<|user|>{t}\n<|assistant|>Sure, here is" for t in UNSAFE_TEXTS[:5]]
    sampling = Sampling(max_new_tokens=6, temperature=0.0, top_p=1.0, seed=0)
    local = TransformersGenerator(*tiny_lm, "tiny", batch_size=1).complete(texts, sampling)
    with serving(tiny_lm) as server:
        remote = OpenAIGenerator(CompletionsClient(server.url, "tiny", concurrency=3)).complete(texts, sampling)
    assert remote == local


def test_teacher_over_http_equals_the_local_teacher_on_the_same_logits(tiny_lm):
    model, tokenizer = tiny_lm
    prompts, responses = UNSAFE_TEXTS[:3] + SAFE_TEXTS[:3], [None, "Sure.", None, None, "No.", None]
    local = LlamaGuardTeacher(model, tokenizer, name="tiny").score(prompts, responses)
    with serving(tiny_lm) as server:
        client = CompletionsClient(server.url, "tiny")
        remote = OpenAILlamaGuardTeacher(client, tokenizer, logprobs=len(tokenizer)).score(prompts, responses)
        with pytest.raises(GenerationError, match="top 1 logprobs"):
            OpenAILlamaGuardTeacher(client, tokenizer, logprobs=1).score(["a b c"] * 4)
    assert np.allclose(remote, local, atol=1e-5)


def test_concurrency_is_bounded(tiny_lm):
    with serving(tiny_lm, delays=(0.3,) * 8) as server:
        client = CompletionsClient(server.url, "tiny", concurrency=2)
        assert len(client.complete(["hello"] * 8, max_tokens=1)) == 8
        assert server.max_inflight == 2 and server.requests == 8


def test_retryable_failures_and_timeouts_are_retried_then_given_up(tiny_lm):
    with serving(tiny_lm, fail_first=2) as server:
        client = CompletionsClient(server.url, "tiny", retries=3, backoff=0.01)
        assert client.complete(["hello"], max_tokens=2)[0]["text"] is not None
        assert server.requests == 3
    with serving(tiny_lm, delays=(2.0,)) as server:
        client = CompletionsClient(server.url, "tiny", retries=2, backoff=0.01, timeout=0.5)
        assert len(client.complete(["hello"], max_tokens=1)) == 1
        assert server.requests == 2  # the stalled first attempt timed out, the retry answered
    with serving(tiny_lm, fail_first=100) as server:
        client = CompletionsClient(server.url, "tiny", retries=2, backoff=0.01)
        with pytest.raises(GenerationError, match="gave up after 3 attempts; last: HTTP 503"):
            client.complete(["hello"], max_tokens=1)


def test_complete_works_inside_a_running_event_loop(tiny_lm):
    # Jupyter, or any async app, calls the sync API with a loop already running in its thread.
    prompts = [f"<|user|>{t}\n<|assistant|>Sure," for t in UNSAFE_TEXTS[:3]]
    with serving(tiny_lm) as server:
        client = CompletionsClient(server.url, "tiny", concurrency=2)
        expected = client.complete(prompts, max_tokens=4, temperature=0.0)

        async def main():
            return client.complete(prompts, max_tokens=4, temperature=0.0)

        assert asyncio.run(main()) == expected
        assert server.requests == 2 * len(prompts)


def test_retry_after_on_429_is_waited_out_even_with_a_tiny_backoff(tiny_lm):
    with serving(tiny_lm, fail_first=1, fail_status=429, retry_after="1") as server:
        client = CompletionsClient(server.url, "tiny", retries=2, backoff=0.01)
        assert len(client.complete(["hello"], max_tokens=1)) == 1
        first, second = server.arrivals
    assert second - first >= 0.9  # the header's 1 s, not the client's ~0.01 s


def test_retry_after_reads_seconds_and_http_dates_capped_at_a_minute():
    assert retry_after_seconds("1") == 1.0
    assert retry_after_seconds("0") == 0.0
    assert retry_after_seconds("3600") == 60.0
    in_30s = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 28.0 <= retry_after_seconds(in_30s) <= 30.0
    past = format_datetime(datetime.now(timezone.utc) - timedelta(hours=1), usegmt=True)
    assert retry_after_seconds(past) == 0.0
    for unusable in (None, "", "soon", "nan", "-5"):
        assert retry_after_seconds(unusable) is None
