"""Generation on local transformers (GGUF files included): texts in, continuations out. The
OpenAI-compatible generator (``openai_client.py``) has the same interface."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from guard_sdk.training.harmaug.causal_lm import encode_batch, left_padded, load_causal_lm


@dataclass(frozen=True)
class Sampling:
    """How continuations are drawn; every field comes from the recipe."""

    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int


class TransformersGenerator:
    """Continuations from a local causal LM (any transformers checkpoint, GGUF files included), batched."""

    def __init__(self, model: Any, tokenizer: Any, name: str, batch_size: int = 8) -> None:
        self.model, self.tokenizer, self.name, self.batch_size = model.eval(), tokenizer, name, batch_size

    @classmethod
    def from_pretrained(cls, source: str, batch_size: int = 8, **kwargs: Any) -> TransformersGenerator:
        """A folder or hub id; ``kwargs`` as ``causal_lm.load_causal_lm`` takes them (``gguf_file=``)."""
        return cls(*load_causal_lm(source, **kwargs), source, batch_size)

    def complete(self, texts: Sequence[str], sampling: Sampling) -> list[str]:
        """The generated continuation of each text (the text itself, prefix included, is not repeated)."""
        import torch

        torch.manual_seed(sampling.seed)
        out: list[str] = []
        with left_padded(self.tokenizer):  # each text ends where its output starts
            for start in range(0, len(texts), self.batch_size):
                chunk = list(texts[start : start + self.batch_size])
                batch = encode_batch(self.tokenizer, chunk, self.model.device)
                with torch.inference_mode():
                    generated = self.model.generate(
                        **batch, max_new_tokens=sampling.max_new_tokens, do_sample=sampling.temperature > 0,
                        temperature=sampling.temperature or None, top_p=sampling.top_p,
                        pad_token_id=self.tokenizer.pad_token_id)
                out += self.tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1]:],
                                                   skip_special_tokens=True)
        return out
