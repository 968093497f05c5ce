"""Load the PyTorch model and fast tokenizer that an export starts from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from guard_sdk.bundle import TOKENIZER_NAME, TextEncoding
from guard_sdk.errors import ExportError, ManifestError
from guard_sdk.tokenization import TextEncoder

# Written beside the weights by `guard-sdk finetune` (guard_sdk.training.finetune): recipe, data, threshold.
TRAINING_RECORD = "guard_training.json"


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


def unsafe_index(model: Any) -> int:
    """The label index named 'unsafe' in the checkpoint's config, else 1 (the project's convention)."""
    names = [str(model.config.id2label.get(i, "")).lower() for i in range(2)]
    return names.index("unsafe") if "unsafe" in names else 1


def training_record(checkpoint: str | Path) -> dict[str, Any] | None:
    """What the bundle keeps of a local checkpoint's training record: recipe, rebuild command, data seen,
    calibrated threshold. None for a checkpoint that `guard-sdk finetune` did not write."""
    path = Path(checkpoint) / TRAINING_RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return {"recipe": record["recipe"]["name"], "base_model": record["recipe"]["model"],
                "command": record["command"], "data": record["data"], "threshold": record["threshold"]["value"],
                "threshold_rule": f"{record['threshold']['rule']} on {record['threshold']['on']}"}
    except (ValueError, KeyError, TypeError) as e:
        raise ExportError(f"{path}: not a training record guard-sdk can read ({e})") from e


def model_inputs(model: Any, tokenizer: Any) -> list[str]:
    """The inputs the exported model takes: token type ids only where the model has a table for them."""
    inputs = ["input_ids", "attention_mask"]
    if "token_type_ids" in tokenizer.model_input_names and getattr(model.config, "type_vocab_size", 0) > 0:
        inputs.append("token_type_ids")
    return inputs


def default_overlap(max_length: int) -> int:
    """Tokens two windows of a long input share, unless an export says otherwise."""
    return max_length // 8


def bundle_encoder(tokenizer: Any, folder: Path, max_length: int, prompt_truncation_side: str = "left",
                   window_overlap: int | None = None) -> TextEncoder:
    """Write ``folder``/tokenizer.json and return the runtime's encoder over it.

    Training, evaluation of a checkpoint and export all encode through this, so a model is trained and
    judged on the same windows the runtime will give it.
    """
    tokenizer.backend_tokenizer.save(str(Path(folder) / TOKENIZER_NAME))
    text = TextEncoding(
        pair_encoding="tokenizer_pair",
        prompt_truncation_side=prompt_truncation_side,
        window_overlap=window_overlap if window_overlap is not None else default_overlap(max_length),
        pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
        pad_token=tokenizer.pad_token or "",
    )
    try:
        return TextEncoder(Path(folder) / TOKENIZER_NAME, max_length, text)
    except ManifestError as e:
        raise ExportError(str(e)) from e
