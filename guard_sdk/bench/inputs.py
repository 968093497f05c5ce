"""Inputs of a chosen length in tokens, for a bundle's own tokenizer."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from guard_sdk.tokenization import TextEncoder

# Common English words: one token each in the vocabularies of BERT, DeBERTa-v3 and Llama-style tokenizers,
# so a text of n of them is n tokens long (the record keeps the length actually measured).
FILLER = ("the", "cat", "sat", "on", "a", "mat", "and", "we", "saw", "it", "in", "my", "old", "house", "by",
          "sea")


def text_of_tokens(encoder: TextEncoder, tokens: int) -> str:
    """A prompt whose windows hold ``tokens`` tokens in all, special tokens of each window included (one
    window up to the bundle's max_length; longer texts are cut into windows as the runtime cuts them)."""
    specials = encoder.max_length - encoder.single_budget
    words: list[str] = []
    while True:
        text = " ".join(words)
        count = sum(len(w.input_ids) for w in encoder.windows(text)) if words else specials
        if count >= tokens:
            return text
        words.extend(FILLER[(len(words) + i) % len(FILLER)] for i in range(max(1, (tokens - count) // 2)))
