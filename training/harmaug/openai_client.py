"""An OpenAI-compatible completions client (vLLM, SGLang, TGI, llama.cpp server) for generation and judging
at scale: bounded concurrency, timeouts, and retries with exponential backoff that honour Retry-After.

It uses the raw ``/v1/completions`` endpoint, not chat: HarmAug prefills the assistant's turn, so the
client sends text already put through the model's chat template (``requests.prefilled_text``).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import numpy as np

from guard_sdk.errors import GuardError
from guard_sdk.training.harmaug.teachers import (
    CATEGORY_LINE,
    CATEGORY_TOKENS,
    judge_prompt,
    pairs,
    parse_codes,
    verdict_token_ids,
)

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 60.0  # seconds; a server asking for longer gets retried sooner and may just say so again


class GenerationError(GuardError):
    """A server that kept failing, or answered in a form the client cannot use."""


def retry_after_seconds(value: str | None) -> float | None:
    """How long a ``Retry-After`` header (delay-seconds or an HTTP date) asks the client to wait, capped at
    ``MAX_RETRY_AFTER``; None when absent or unreadable, so the caller falls back to its own backoff."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000"; HTTP dates are GMT anyway
            when = when.replace(tzinfo=timezone.utc)
        seconds = max((when - datetime.now(timezone.utc)).total_seconds(), 0.0)
    if math.isnan(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)


class CompletionsClient:
    """One prompt per request, at most ``concurrency`` in flight, each retried ``retries`` times on a timeout,
    a dropped connection or a retryable status, waiting ``backoff * 2**attempt`` seconds (with jitter), or
    longer when the reply's ``Retry-After`` (sent with 429 and 503) asks for more: the header is the
    server's minimum, and our backoff still spreads out the retries when it asks for 0."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, concurrency: int = 8,
                 timeout: float = 120.0, retries: int = 4, backoff: float = 1.0, server: Any = None) -> None:
        self.server = server  # an in-process server (llamacpp backend) that must live as long as this client
        self.url = base_url.rstrip("/") + "/v1/completions"
        self.model, self.concurrency, self.timeout = model, concurrency, timeout
        self.retries, self.backoff = retries, backoff
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def complete(self, prompts: Sequence[str], **params: Any) -> list[dict[str, Any]]:
        """The first choice for each prompt, in order; ``params`` are the request's fields
        (max_tokens, temperature, top_p, seed, logprobs, ...).

        Inside a running event loop (Jupyter, an async app) ``asyncio.run`` is refused, so the requests run
        on a fresh loop in a worker thread; this call still blocks, and with it the caller's loop. Without
        one they run in this thread, where Ctrl-C cancels them."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._all(list(prompts), params))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="completions") as worker:
            return worker.submit(asyncio.run, self._all(list(prompts), params)).result()

    async def _all(self, prompts: list[str], params: dict[str, Any]) -> list[dict[str, Any]]:
        import httpx

        gate = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(timeout=self.timeout, headers=self.headers, limits=limits) as http:
            return await asyncio.gather(*(self._one(http, gate, p, params) for p in prompts))

    async def _one(self, http: Any, gate: asyncio.Semaphore, prompt: str, params: dict[str, Any]) -> dict[str, Any]:
        import httpx

        body = {"model": self.model, "prompt": prompt, **params}
        problem, asked = "", None
        for attempt in range(self.retries + 1):
            if attempt:
                backoff = self.backoff * 2 ** (attempt - 1) * (0.5 + random.random())
                await asyncio.sleep(max(backoff, asked or 0.0))
                asked = None
            async with gate:
                try:
                    reply = await http.post(self.url, json=body)
                except (httpx.TimeoutException, httpx.TransportError) as e:
                    problem = f"{type(e).__name__}: {e}"
                    continue
            if reply.status_code in RETRY_STATUS:
                problem, asked = f"HTTP {reply.status_code}", retry_after_seconds(reply.headers.get("Retry-After"))
                continue
            if reply.status_code != 200:
                raise GenerationError(f"{self.url}: HTTP {reply.status_code}: {reply.text[:300]}")
            try:
                return reply.json()["choices"][0]
            except (ValueError, KeyError, IndexError) as e:
                raise GenerationError(f"{self.url}: not a completions response ({e}): {reply.text[:300]}") from e
        raise GenerationError(f"{self.url}: gave up after {self.retries + 1} attempts; last: {problem}")


class OpenAIGenerator:
    """Continuations over HTTP, the same interface as ``generators.TransformersGenerator``."""

    def __init__(self, client: CompletionsClient) -> None:
        self.client, self.name = client, f"openai:{client.model}"

    def complete(self, texts: Sequence[str], sampling: Any) -> list[str]:
        choices = self.client.complete(texts, max_tokens=sampling.max_new_tokens, temperature=sampling.temperature,
                                       top_p=sampling.top_p, seed=sampling.seed)
        return [c["text"] for c in choices]


class OpenAILlamaGuardTeacher:
    """``teachers.LlamaGuardTeacher``'s scoring over a completions endpoint: one token, its top logprobs,
    renormalised over the first tokens of "safe" and "unsafe". The tokenizer (the served model's) builds
    the same prompt text locally. A word missing from the top ``logprobs`` counts as probability 0."""

    def __init__(self, client: CompletionsClient, tokenizer: Any, logprobs: int = 20) -> None:
        self.client, self.tokenizer, self.logprobs = client, tokenizer, logprobs
        self.name = f"llama-guard-style:openai:{client.model}"
        safe_id, unsafe_id = verdict_token_ids(tokenizer)
        self.words = (tokenizer.convert_ids_to_tokens(safe_id), tokenizer.convert_ids_to_tokens(unsafe_id))

    def score(self, prompts: Sequence[str], responses: Sequence[str | None] | None = None) -> np.ndarray:
        texts = [judge_prompt(self.tokenizer, p, r) for p, r in pairs(prompts, responses)]
        choices = self.client.complete(texts, max_tokens=1, temperature=0.0, logprobs=self.logprobs)
        scores = []
        for choice in choices:
            top = (choice.get("logprobs") or {}).get("top_logprobs") or [{}]
            safe, unsafe = (top[0].get(w, -np.inf) for w in self.words)
            if safe == unsafe == -np.inf:
                raise GenerationError(f"neither {self.words[0]!r} nor {self.words[1]!r} is in the top "
                                      f"{self.logprobs} logprobs; ask for more (logprobs=) or check the tokenizer")
            scores.append(1.0 / (1.0 + np.exp(safe - unsafe)))
        return np.array(scores)

    def categories(self, prompts: Sequence[str], responses: Sequence[str | None] | None = None
                   ) -> list[tuple[str, ...]]:
        """The codes the served model writes after "unsafe\n", greedily (``teachers.parse_codes``)."""
        texts = [judge_prompt(self.tokenizer, p, r) + CATEGORY_LINE for p, r in pairs(prompts, responses)]
        choices = self.client.complete(texts, max_tokens=CATEGORY_TOKENS, temperature=0.0)
        return [parse_codes(c["text"]) for c in choices]
