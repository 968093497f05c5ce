"""Texts to model inputs: the tokenizer.json of the bundle, pair joining, and windows for long inputs.

Why windows are cut here and not by ``tokenizers``' own truncation: its overflow for a pair carries the
prompt's cut-off pieces into every response window (quadratic for a long prompt), and there is no way
to drop them. So we tokenize each side once without special tokens, slice id arrays, and put the
special tokens back from a template that the tokenizer's own post-processor shows us on a probe.
docs/bundle.md states the rule; the Android demo follows the same one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from guard_sdk.bundle import TextEncoding
from guard_sdk.errors import BundleError, ManifestError


@dataclass(frozen=True)
class Segment:
    """One run of a post-processed probe: fixed special ids, or the place of sequence 0 or 1."""

    ids: tuple[int, ...]
    type_id: int
    sequence: int | None  # None for special tokens


def special_template(tokenizer: Tokenizer, pair: bool) -> tuple[Segment, ...]:
    """The special-token layout the tokenizer's post-processor puts around one text or a pair."""
    # A full encode of a probe marks which tokens came from which text (post_process alone does not).
    done = tokenizer.encode("a", "a") if pair else tokenizer.encode("a")
    segments: list[Segment] = []
    for token_id, type_id, seq in zip(done.ids, done.type_ids, done.sequence_ids):
        if seq is not None:
            if not segments or segments[-1].sequence != seq:
                segments.append(Segment((), type_id, seq))
        elif segments and segments[-1].sequence is None and segments[-1].type_id == type_id:
            last = segments.pop()
            segments.append(Segment((*last.ids, token_id), type_id, None))
        else:
            segments.append(Segment((token_id,), type_id, None))
    if sorted(s.sequence for s in segments if s.sequence is not None) != list(range(2 if pair else 1)):
        raise ValueError("the tokenizer's post-processor does not place each text exactly once")
    return tuple(segments)


@dataclass(frozen=True)
class Window:
    """Model inputs for one window of one text; ``owner`` is the text's index in its batch."""

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    owner: int


def window_starts(length: int, size: int, overlap: int) -> range:
    """Starts of windows of ``size`` tokens, each sharing ``overlap`` with the last, covering ``length``."""
    if length <= size:
        return range(0, 1)
    return range(0, length - overlap, size - overlap)


class TextEncoder:
    """Encodes a prompt, or a prompt and a response, into one or more windows of at most max_length."""

    def __init__(self, tokenizer: str | Path | bytes, max_length: int, text: TextEncoding,
                 where: str | Path | None = None) -> None:
        """``tokenizer``: a tokenizer.json path, or its bytes (``where`` names it in errors)."""
        tokenizer_path = where if isinstance(tokenizer, bytes) else tokenizer
        try:
            self._tokenizer = (Tokenizer.from_str(tokenizer.decode("utf-8")) if isinstance(tokenizer, bytes)
                               else Tokenizer.from_file(str(tokenizer)))
        except Exception as e:  # tokenizers raises its own untyped Exception for a file it cannot read
            raise BundleError(f"{tokenizer_path}: not a tokenizer.json that `tokenizers` can load ({e})",
                              tokenizer_path) from e
        # The file may carry training-time truncation/padding; windows and padding are ours.
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.max_length = max_length
        self.text = text
        if self._tokenizer.token_to_id(text.pad_token) != text.pad_id:
            raise ManifestError(f"text.pad_id {text.pad_id} is not the id of pad_token {text.pad_token!r} in "
                                f"{tokenizer_path} ({self._tokenizer.token_to_id(text.pad_token)})", tokenizer_path)
        try:
            self._single = special_template(self._tokenizer, pair=False)
            self._pair = special_template(self._tokenizer, pair=True)
        except ValueError as e:
            raise ManifestError(f"{tokenizer_path}: {e}", tokenizer_path) from e
        self.single_budget = max_length - sum(len(s.ids) for s in self._single)
        self.pair_budget = max_length - sum(len(s.ids) for s in self._pair)
        if text.window_overlap >= self.pair_budget // 2:
            raise ManifestError(
                f"window_overlap {text.window_overlap} must be under half of the {self.pair_budget} "
                f"tokens a response window holds at max_length {max_length}",
                tokenizer_path,
            )

    def tokenize(self, text: str) -> np.ndarray:
        """Token ids of ``text`` without special tokens."""
        return np.asarray(self._tokenizer.encode(text, add_special_tokens=False).ids, dtype=np.int64)

    def _assemble(self, template: tuple[Segment, ...], parts: tuple[np.ndarray, ...], owner: int) -> Window:
        ids, types = [], []
        for seg in template:
            chunk = np.asarray(seg.ids, dtype=np.int64) if seg.sequence is None else parts[seg.sequence]
            ids.append(chunk)
            types.append(np.full(len(chunk), seg.type_id, dtype=np.int64))
        return Window(np.concatenate(ids), np.concatenate(types), owner)

    def windows(self, prompt: str, response: str | None = None, owner: int = 0) -> list[Window]:
        """All windows of one input; one window when it fits in max_length.

        A prompt alone is cut into overlapping windows. A pair keeps the response whole where it fits;
        otherwise the prompt keeps at most half the pair budget (cut on ``prompt_truncation_side``) and
        the response is cut into overlapping windows, each joined to that prompt. Where the prompt was cut and
        the bundle says ``prompt_windows``, each window of the prompt (of the kept prompt's length) other than
        the kept part follows, joined to the response's first window.
        """
        overlap = self.text.window_overlap
        p = self.tokenize(prompt)
        if response is None:
            size = self.single_budget
            starts = window_starts(len(p), size, overlap)
            return [self._assemble(self._single, (p[s : s + size],), owner) for s in starts]
        r = self.tokenize(response)
        budget = self.pair_budget
        keep = min(len(p), self._prompt_room(len(r)))
        whole, size = p, budget - keep
        if keep < len(p):
            p = p[len(p) - keep :] if self.text.prompt_truncation_side == "left" else p[:keep]
        found = [self._assemble(self._pair, (p, r[s : s + size]), owner) for s in window_starts(len(r), size, overlap)]
        if self.text.prompt_windows and keep < len(whole):
            parts = (whole[s : s + keep] for s in window_starts(len(whole), keep, overlap))
            found += [self._assemble(self._pair, (part, r[:size]), owner) for part in parts
                      if not np.array_equal(part, p)]
        return found

    def whole_window(self, prompt: str, response: np.ndarray | None = None, owner: int = 0) -> Window | None:
        """The first window of ``prompt`` (and of the response's tokens ``response``, from ``tokenize``) where it
        holds the prompt whole, else None: the window that ``windows`` starts with, for a sentence of a long prompt
        scored alone or beside the response's start (``sentences``)."""
        p = self.tokenize(prompt)
        if response is None:
            return self._assemble(self._single, (p,), owner) if len(p) <= self.single_budget else None
        if len(p) > self._prompt_room(len(response)):
            return None
        return self._assemble(self._pair, (p, response[: self.pair_budget - len(p)]), owner)

    def _prompt_room(self, response_tokens: int) -> int:
        """The prompt's tokens a pair window keeps: what the response leaves, and at least half the budget."""
        return self.pair_budget - min(response_tokens, self.pair_budget // 2)


def pad_batch(windows: list[Window], pad_id: int, names: list[str]) -> dict[str, np.ndarray]:
    """Right-pad windows to the longest one; return the model inputs ``names`` asks for."""
    width = max(len(w.input_ids) for w in windows)
    ids = np.full((len(windows), width), pad_id, dtype=np.int64)
    types = np.zeros((len(windows), width), dtype=np.int64)
    mask = np.zeros((len(windows), width), dtype=np.int64)
    for row, w in enumerate(windows):
        n = len(w.input_ids)
        ids[row, :n] = w.input_ids
        types[row, :n] = w.token_type_ids
        mask[row, :n] = 1
    arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return {name: arrays[name] for name in names}
