"""Load the PyTorch model and fast tokenizer that an export starts from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from guard_sdk.errors import ExportError


def load_checkpoint(checkpoint: str | Path) -> tuple[Any, Any]:
    """(model in eval mode, fast tokenizer) from a local folder or a Hugging Face hub id."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(checkpoint))
        tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    except (OSError, ValueError) as e:
        raise ExportError(f"{checkpoint}: cannot load a sequence-classification checkpoint ({e})") from e
    if model.config.num_labels != 2:
        raise ExportError(
            f"{checkpoint}: has {model.config.num_labels} labels; a guard needs exactly 2 (safe, unsafe)"
        )
    if not getattr(tokenizer, "is_fast", False):
        raise ExportError(f"{checkpoint}: needs a fast tokenizer (tokenizer.json); the runtime reads only that")
    return model.eval(), tokenizer


def default_max_length(model: Any, tokenizer: Any) -> int:
    """The longest input the checkpoint takes: its tokenizer's limit, capped by its position table."""
    limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    return int(min(n for n in limits if isinstance(n, int) and 0 < n < 1_000_000))
