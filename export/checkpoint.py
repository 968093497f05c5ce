"""Load the PyTorch model and fast tokenizer that an export starts from."""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guard_sdk.bundle import TOKENIZER_NAME, CategoryHead, TextEncoding
from guard_sdk.categories import LABEL_PREFIX
from guard_sdk.errors import ExportError, ManifestError
from guard_sdk.labels import LABEL_VALUES, LABELS, label_value
from guard_sdk.tokenization import TextEncoder

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

# Written beside the weights by `guard-sdk finetune` (guard_sdk.training.finetune): recipe, data, threshold.
TRAINING_RECORD = "guard_training.json"
# What transformers names the labels of a config that never named them.
HF_DEFAULT_LABELS = ["LABEL_0", "LABEL_1"]
_SET_LABELS = ('say which label is unsafe: set it in the checkpoint\'s config.json: "id2label": {"0": "safe", '
               '"1": "unsafe"} (with your model\'s indices), or pass --unsafe-label NAME|INDEX '
               "(ExportConfig.unsafe_label)")


@contextlib.contextmanager
def quiet_model_import() -> Iterator[None]:
    """Load a model without what its family's code says on import that tells a user nothing: DeBERTa's modeling
    code is compiled with torch.jit.script, which torch now deprecates (transformers' choice, not ours)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script(_method)?` is deprecated",
                                category=DeprecationWarning)
        yield


def load_checkpoint(checkpoint: str | Path,
                    allow_untrained_head: bool = False) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model in eval mode, fast tokenizer) from a local folder or a Hugging Face hub id.

    A checkpoint whose files lack some of the model's weights (a bare encoder has no classification head) is
    refused unless ``allow_untrained_head``: transformers would fill them at random, and the guard would score
    every input near 0.5.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        with quiet_model_import():
            model, info = AutoModelForSequenceClassification.from_pretrained(str(checkpoint),
                                                                             output_loading_info=True)
        tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    except (OSError, ValueError) as e:
        raise ExportError(f"{checkpoint}: cannot load a sequence-classification checkpoint ({e})") from e
    missing = sorted(info["missing_keys"])
    if missing and not allow_untrained_head:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise ExportError(
            f"{checkpoint}: its files hold no weights for {shown}, so they would be random: a bare encoder (such "
            "as a sentence-transformers model) has no trained classification head, and its guard would score "
            "every input near 0.5. Train a head first (guard-sdk finetune), or pass --allow-untrained-head "
            "(ExportConfig.allow_untrained_head) to export it anyway, e.g. to measure size and speed"
        )
    categories = checkpoint_categories(model.config)
    if model.config.num_labels != 2 + len(categories):
        raise ExportError(
            f"{checkpoint}: has {model.config.num_labels} labels; a guard needs exactly 2 (safe, unsafe), then "
            f"one per category named '{LABEL_PREFIX}NAME' (guard-sdk finetune's category head)"
        )
    if not getattr(tokenizer, "is_fast", False):
        raise ExportError(f"{checkpoint}: needs a fast tokenizer (tokenizer.json); the runtime reads only that")
    return model.eval(), tokenizer


def checkpoint_categories(config: PretrainedConfig) -> list[str]:
    """The categories a checkpoint's extra logits score, in order (logits 2, 3, ...; none for a 2-label model)."""
    labels = {int(k): str(v) for k, v in (config.id2label or {}).items()}
    return [labels[i][len(LABEL_PREFIX):] for i in range(2, len(labels)) if labels.get(i, "").startswith(LABEL_PREFIX)]


def category_heads(config: PretrainedConfig, training: dict[str, Any] | None) -> list[CategoryHead]:
    """The manifest's categories of a checkpoint: its category logits in order, each at the threshold its training
    calibrated (0.5, with a warning, where no training record gives one)."""
    names = checkpoint_categories(config)
    thresholds = ((training or {}).get("categories") or {}).get("thresholds", {})
    missing = [n for n in names if n not in thresholds]
    if missing:
        log.warning("no calibrated threshold for the categories %s: 0.5 each (guard-sdk finetune calibrates them)",
                    ", ".join(missing))
    return [CategoryHead(name, 2 + i, float(thresholds.get(name, 0.5))) for i, name in enumerate(names)]


def default_max_length(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    """The longest input the checkpoint takes: its tokenizer's limit, capped by its position table."""
    limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    return int(min(n for n in limits if isinstance(n, int) and 0 < n < 1_000_000))


def unsafe_index(config: PretrainedConfig, unsafe_label: str | int | None = None) -> int:
    """Which logit of a checkpoint (its ``config``) is unsafe: ``unsafe_label`` (a label name of the config, or
    an index) where given, else what the config's label names mean in guard_sdk.labels' vocabulary (so
    {0: harmful, 1: harmless} gives 0).

    Transformers' default names (LABEL_0, LABEL_1) mean index 1, guard-sdk's convention, with a warning. Any
    other mapping that does not say which one is unsafe is refused rather than guessed: a wrong guess inverts
    every verdict.
    """
    id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
    names = [id2label.get(i, "") for i in range(2)]
    shown = f"config.id2label {{0: {names[0]!r}, 1: {names[1]!r}}}"
    if unsafe_label is not None:
        given = str(unsafe_label).strip()
        if given in ("0", "1"):
            return int(given)
        matches = [i for i, name in enumerate(names) if name.strip().lower() == given.lower()]
        if len(matches) != 1:
            raise ExportError(f"unsafe label '{unsafe_label}' names neither label of the checkpoint's {shown}; "
                              "pass one of those names, or the index 0 or 1")
        return matches[0]
    if names == HF_DEFAULT_LABELS:
        log.warning("%s is transformers' default, which names no class: taking index 1 as unsafe (guard-sdk's "
                    "convention); to be sure, %s", shown, _SET_LABELS)
        return 1
    classes: list[int] = []
    for name in names:
        cls = label_value(name)
        if cls is None:
            raise ExportError(f"{shown}: {name!r} is not a label name guard-sdk knows "
                              f"(it reads {', '.join(k for k in LABEL_VALUES if isinstance(k, str))}); {_SET_LABELS}")
        classes.append(cls)
    if classes[0] == classes[1]:
        raise ExportError(f"{shown}: both mean {LABELS[classes[0]]}, so neither index is known to be unsafe; "
                          f"{_SET_LABELS}")
    return classes.index(1)


def training_record(checkpoint: str | Path) -> dict[str, Any] | None:
    """What the bundle keeps of a local checkpoint's training record: recipe, rebuild command, data seen,
    calibrated threshold. None for a checkpoint that `guard-sdk finetune` did not write."""
    path = Path(checkpoint) / TRAINING_RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        kept = {"recipe": record["recipe"]["name"], "base_model": record["recipe"]["model"],
                "command": record["command"], "data": record["data"], "threshold": record["threshold"]["value"],
                "threshold_rule": f"{record['threshold']['rule']} on {record['threshold']['on']}"}
        heads = record.get("categories")
        if heads:
            kept["categories"] = {k: heads[k] for k in ("names", "thresholds", "rule", "rows", "dev")}
        return kept
    except (ValueError, KeyError, TypeError) as e:
        raise ExportError(f"{path}: not a training record guard-sdk can read ({e})") from e


def model_inputs(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """The inputs the exported model takes: token type ids only where the model has a table for them."""
    inputs = ["input_ids", "attention_mask"]
    if "token_type_ids" in tokenizer.model_input_names and getattr(model.config, "type_vocab_size", 0) > 0:
        inputs.append("token_type_ids")
    return inputs


def default_overlap(max_length: int) -> int:
    """Tokens two windows of a long input share, unless an export says otherwise."""
    return max_length // 8


def bundle_encoder(tokenizer: PreTrainedTokenizerBase, folder: Path, max_length: int,
                   prompt_truncation_side: str = "left", window_overlap: int | None = None) -> TextEncoder:
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
        prompt_windows=True,
    )
    try:
        return TextEncoder(Path(folder) / TOKENIZER_NAME, max_length, text)
    except ManifestError as e:
        raise ExportError(str(e)) from e
