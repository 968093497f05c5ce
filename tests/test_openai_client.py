"""The OpenAI-compatible client against a real server on 127.0.0.1 serving a tiny model in the same wire
format: same outputs as local transformers, bounded concurrency, retries with backoff, timeouts."""

import contextlib

import numpy as np
import pytest

from guard_sdk.training.augment import Sampling, TransformersGenerator
from guard_sdk.training.openai_client import (
    CompletionsClient,
    GenerationError,
    OpenAIGenerator,
    OpenAILlamaGuardTeacher,
)
from guard_sdk.training.teachers import LlamaGuardTeacher

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
