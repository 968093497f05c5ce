"""A response judged as it streams: ``Guard.stream(prompt)`` takes the response chunk by chunk as an LLM writes
it and says, after each chunk, whether what has arrived so far is unsafe, and at which chunk it first was, so an
app can stop the stream there rather than let the harm reach the screen.

Each chunk re-scores only what changed. The pair is windowed as ``classify`` windows it (views included), and each
window's logits are kept by its content: a window already scored (the prompt beside the response's earlier
windows) is not run again, so a chunk costs about one window, the latest, whatever the response's length. The
verdict after each chunk is exactly ``classify(prompt, response_so_far)``'s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from guard_sdk.errors import InputTypeError

if TYPE_CHECKING:
    from guard_sdk.guard import Guard, Verdict
    from guard_sdk.policy import Policy


@dataclass(frozen=True)
class StreamVerdict:
    """After one chunk: the verdict on the response so far, the chunk's number (from 0), how many windows it had
    to score, the first chunk at which the response was unsafe (None while it has not been), and the time this
    chunk took."""

    verdict: Verdict
    chunk: int
    scored_windows: int
    first_unsafe_chunk: int | None
    seconds: float


class StreamGuard:
    """Judges one prompt's response chunk by chunk (``feed``); see the module docstring."""

    def __init__(self, guard: Guard, prompt: str, threshold: float, policy: Policy) -> None:
        self.guard, self.prompt, self.threshold, self.policy = guard, prompt, threshold, policy
        self.response = ""
        self.chunks = 0
        self.first_unsafe_chunk: int | None = None
        self._logits: dict[tuple[str, bytes], np.ndarray] = {}
        guard.scored_windows(prompt)  # the prompt is checked (type, Unicode, size) before the first chunk

    def feed(self, chunk: str) -> StreamVerdict:
        """Add ``chunk`` to the response and judge the response so far."""
        start = time.perf_counter()
        if not isinstance(chunk, str):
            raise InputTypeError(f"a chunk must be a str, got {type(chunk).__name__}")
        tagged = self.guard.scored_windows(self.prompt, self.response + chunk)
        self.response += chunk
        keys = [(view, w.input_ids.tobytes() + b"|" + w.token_type_ids.tobytes()) for view, w in tagged]
        fresh = {k: w for k, (_, w) in zip(keys, tagged) if k not in self._logits}  # each new window once
        if fresh:
            self._logits.update(zip(fresh, self.guard.window_logits(list(fresh.values()))))
        verdict = self.guard.judge(tagged, np.stack([self._logits[k] for k in keys]), 1, self.threshold,
                                   self.policy)[0]
        if verdict.unsafe and self.first_unsafe_chunk is None:
            self.first_unsafe_chunk = self.chunks
        self.chunks += 1
        return StreamVerdict(verdict, self.chunks - 1, len(fresh), self.first_unsafe_chunk,
                             time.perf_counter() - start)
