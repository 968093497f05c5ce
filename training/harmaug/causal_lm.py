"""Loading and batching a local causal LM, shared by the generators and the Llama-Guard-style teacher.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def load_causal_lm(source: str | Path, **kwargs: Any) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) from a folder or hub id; ``gguf_file=`` reads a GGUF file (the tokenizer
    comes from the same file), other ``kwargs`` go to the model's ``from_pretrained`` (dtype, device_map). Without a
    device_map the model goes to the GPU when there is one."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source), **{k: v for k, v in kwargs.items() if k == "gguf_file"})
    model = AutoModelForCausalLM.from_pretrained(str(source), **kwargs).eval()
    if torch.cuda.is_available() and "device_map" not in kwargs:
        model = model.to("cuda")
    return model, tokenizer


@contextlib.contextmanager
def left_padded(tokenizer: Any) -> Iterator[Any]:
    """The tokenizer padding on the left, so every row of a batch ends where the model's next token goes;
    a tokenizer without a pad token pads with its end-of-sequence token."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        yield tokenizer
    finally:
        tokenizer.padding_side = side


def encode_batch(tokenizer: Any, texts: list[str], device: Any = "cpu") -> Any:
    """Tensors on ``device`` for one left-padded batch of texts that already hold their special tokens."""
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False,
                     return_token_type_ids=False).to(device)
