"""Micro-batches across clients: requests put their inputs on one bounded queue, and a few workers each take what
is waiting (up to ``max_batch`` inputs) and score it with one ``classify_batch`` call in a thread.

Why: a model call on a batch of windows costs less than the same windows one by one where the artifact batches
(fp32 and fp16; the dynamically quantized int8 ones run a window per call, and gain only the saved per-call
overhead), and several workers keep every core busy meanwhile. A full queue answers 429 rather than letting
latency grow without bound. Each input's verdict is ``classify_batch``'s on it, whatever else shares its batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from guard_sdk.errors import InputError
from guard_sdk.guard import Guard, Verdict
from guard_sdk.policy import PolicyLike


class QueueFull(Exception):
    """The batcher holds ``max_queue`` inputs already."""


@dataclass
class _Item:
    prompt: str
    response: str | None
    policy: PolicyLike
    done: asyncio.Future[Verdict | InputError] = field(repr=False)


class Batcher:
    """Scores (prompt, response) inputs of many requests in shared ``classify_batch`` calls."""

    def __init__(self, guard: Guard, workers: int, max_batch: int, max_queue: int) -> None:
        self.guard, self.max_batch = guard, max_batch
        self.queue: asyncio.Queue[_Item] = asyncio.Queue(max_queue)
        self.workers = workers
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the workers in the running event loop (once: a later call does nothing)."""
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    async def score(self, prompts: Sequence[str], responses: Sequence[str | None],
                    policy: PolicyLike = None) -> list[Verdict | InputError]:
        """Each input's verdict, or its InputError; QueueFull when they do not all fit on the queue."""
        self.start()
        loop = asyncio.get_running_loop()
        if self.queue.maxsize - self.queue.qsize() < len(prompts):
            raise QueueFull(f"{self.queue.qsize()} inputs are waiting; retry shortly")
        items = [_Item(p, r, policy, loop.create_future()) for p, r in zip(prompts, responses)]
        for item in items:
            self.queue.put_nowait(item)
        return list(await asyncio.gather(*(item.done for item in items)))

    async def _work(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.max_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            # One call per policy: a request's policy applies to its own inputs only.
            for policy in {id(i.policy): i.policy for i in batch}.values():
                group = [i for i in batch if i.policy is policy]
                try:
                    verdicts: list[Any] = await run_in_threadpool(
                        self.guard.classify_batch, [i.prompt for i in group], [i.response for i in group],
                        policy=policy, errors="return")
                except Exception as e:  # a failure of the whole call (a bad policy): every input of it gets it
                    for item in group:
                        if not item.done.done():
                            item.done.set_exception(e)
                    continue
                for item, verdict in zip(group, verdicts):
                    if not item.done.done():
                        item.done.set_result(verdict)
