"""Supervised fine-tuning on seed data (the paper's "no augmentation, no distillation" baseline).

recipe → data splits (saved as Arrow) → Hugging Face Trainer with class-balanced, length-grouped batches →
model → dev scores → calibrated threshold → optional guard bundle, evaluated through the runtime, with a
model card that says what it saw and how it scored. A killed run resumes from its last Trainer checkpoint.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from guard_sdk.export.checkpoint import TRAINING_RECORD
from guard_sdk.training import data as D
from guard_sdk.training.data.splits import data_summary
from guard_sdk.training.evaluate import (
    calibrate,
    levels_of,
    report,
    score_torch,
    score_with_guard,
    to_markdown,
    write_report,
)
from guard_sdk.training.recipe import (
    CalibrationRecipe,
    DataRecipe,
    Recipe,
    SourceSpec,
    pin_record,
    recipe_dict,
)
from guard_sdk.training.shards import replace_dir
from guard_sdk.training.trainer import device_name, process_state, resolve_model, train_classifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneResult:
    model_dir: Path
    threshold: float
    dev: dict[str, Any]  # evaluation report of the PyTorch model on dev
    bundle: Path | None
    bundle_reports: dict[str, dict[str, Any]]  # split name -> report of the exported bundle


def calibration_groups(dev: Any, c: CalibrationRecipe) -> list[str] | None:
    """Each dev row's source where the recipe weighs every source alike in calibration (``balance: source``)."""
    return list(dev["source"]) if c.balance == "source" else None


def _load(specs: list[SourceSpec], root: str | None) -> Any:
    return D.concat([D.load_data(s.data, root=root, columns=s.columns, split=s.split, config=s.config) for s in specs])


def build_splits(data: DataRecipe, data_dir: str | None) -> tuple[Any, Any]:
    """(train/dev/test DatasetDict, holdout Dataset or None), built by seed: the same rows for every recipe
    that names the same data section."""
    from guard_sdk.training.evasion.suite import every_prompt

    root = data_dir or data.data_dir
    pool = _load(data.sources, root)
    holdout = _load(data.holdout, root) if data.holdout else None
    splits = D.make_splits(pool, data.seed, data.splits, holdout, every_prompt())
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


def _check_output_dir(out: Path, recipe: Recipe, main: bool = True) -> None:
    """Refuse to resume a run of another recipe from the same folder, or to start one in a folder of other
    files (the ``main`` process checks that); record this one's."""
    after = ("output_dir", "export")  # what follows the training, redone by a rerun of the recipe
    pin_record(out, {k: v for k, v in recipe_dict(recipe).items() if k not in after}, refuse_foreign=main)




def finetune(recipe: Recipe, *, recipe_path: str | None = None, data_dir: str | None = None,
             output_dir: str | None = None, export: bool = True, progress: bool = True) -> FinetuneResult | None:
    """Run a recipe end to end; see the module docstring. Figures land in ``output_dir`` and the model card.

    Under ``accelerate launch`` or ``torchrun`` every process trains its share of each batch; the main one
    alone writes the folder, scores with the teacher, calibrates and exports (the others return None).
    """
    state = process_state()
    out = Path(output_dir or recipe.output_dir)
    # The main process pins the folder, saves the splits and fills the teacher's score cache; the others
    # then build the same splits by seed and read the cache, never loading the teacher.
    with state.main_process_first():
        _check_output_dir(out, recipe, state.is_main_process)
        if recipe.distill is not None:
            from guard_sdk.training.distill.teacher_cache import distillation_train_set, open_distill_teacher

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
    plan, heads, disguised = None, None, None
    if recipe.categories is not None:  # planned on the rows as they are: disguised copies do not count
        from guard_sdk.training.categories import plan_categories

        plan = plan_categories(splits, recipe.categories)
    if recipe.disguises is not None:
        from guard_sdk.training.evasion.augment import with_disguises

        before = len(splits["train"])
        splits["train"] = with_disguises(splits["train"], recipe.disguises)
        disguised = len(splits["train"]) - before
        log.info("disguises: %d disguised copies of train rows", disguised)
    if plan is not None and plan["names"]:
        from guard_sdk.training.categories import CategoryLoss, with_category_columns

        splits["train"] = with_category_columns(splits["train"], plan["names"])
        heads = (plan["names"], CategoryLoss(recipe.categories.weight, plan["pos_weight"]))
    model, tokenizer, encoder, train_metrics = train_classifier(
        resolve_model(recipe.model), recipe.gguf_file, recipe.train, splits["train"], out, progress, recipe.distill,
        heads)
    if not state.is_main_process:
        return None

    log.info("scoring dev with the fine-tuned model ...")
    dev = splits["dev"]
    scores = score_torch(model, tokenizer, encoder, dev["prompt"], dev["response"], recipe.train.eval_batch_size,
                         progress)
    c = recipe.calibration
    threshold = calibrate(dev["label"], scores, c.rule, c.threshold, c.max_fpr, calibration_groups(dev, c))
    dev_report = report(dev["label"], scores, dev["source"], levels_of(dev), threshold)
    write_report(dev_report, out, "eval_dev_pytorch", "dev, PyTorch model")
    log.info("threshold %.4f (%s on dev): dev F1 %.3f", threshold, c.rule, dev_report["overall"]["f1"] or 0)
    categories = None
    if plan is not None:
        from guard_sdk.training.categories import calibrate_categories

        categories = calibrate_categories(model, tokenizer, encoder, dev, plan, recipe.train.eval_batch_size, progress)

    record = {
        "recipe": recipe_dict(recipe),
        "command": (f"guard-sdk {'finetune' if recipe.distill is None else 'distill'} --recipe {recipe_path}"
                    if recipe_path else None),
        "data": summary,
        "threshold": {"value": threshold, "rule": c.rule, "on": "dev"},
        "categories": categories,  # the category head's names, thresholds and dev figures, or None
        "disguised_copies": disguised,  # train rows copied under a disguise (recipe disguises), or None
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
    """Export the recipe's bundle, calibrate its threshold on dev as users run it, score the eval sets through
    the runtime, and put those figures in the model card, beside the PyTorch model's dev figures and how often
    the two agree.

    The bundle decides on its most unsafe view (the text, its normalised and decoded forms, its sentences alone),
    which can only raise a row's score over the PyTorch model's: so the recipe's calibration rule is applied
    again to the bundle's own dev scores, and the bundle is written again at that threshold where it differs.
    Parity is checked on the dev split too (up to ExportConfig.parity_rows of its rows), so the export's agreement
    bound is measured on the data the threshold was calibrated on, not on 22 fixed windows alone.
    """
    from guard_sdk import Guard
    from guard_sdk.export import ExportConfig, export_bundle
    from guard_sdk.export.model_card import EvaluationTable, write_model_card

    e, c = recipe.export, recipe.calibration
    bundle = Path(e.bundle)
    dev = eval_sets["dev"]

    def write(threshold: float | None) -> Any:
        return export_bundle(model_dir, bundle, ExportConfig(
            formats=tuple(e.formats), precisions=tuple(e.precisions), name=e.name, max_length=e.max_length,
            int8_tolerance=e.int8_tolerance, int8_min_agreement=e.int8_min_agreement, views=tuple(e.views),
            overwrite=True,
            threshold=threshold, parity_data=tuple(zip(dev["prompt"], dev["response"], dev["label"]))))

    manifest, guard = write(None), Guard.load(bundle)
    log.info("scoring dev (%d rows) with the %s bundle ...", len(dev), guard.artifact.precision)
    scores = {"dev": score_with_guard(guard, dev, progress)}
    calibrated = ""
    if c.rule != "fixed":
        threshold = calibrate(dev["label"], scores["dev"], c.rule, c.threshold, c.max_fpr,
                              calibration_groups(dev, c))
        calibrated = (f"The threshold, {threshold:.4g}, is the calibration rule ({c.rule}) applied to this bundle's "
                      f"own dev scores (its views and `{guard.artifact.path}`); the PyTorch model's is "
                      f"{dev_report['threshold']:.4g}. ")
        if threshold != guard.threshold:
            log.info("threshold %.4f on the bundle's dev scores (the PyTorch model's: %.4f); exporting again ...",
                     threshold, dev_report["threshold"])
            first = guard.artifact.sha256
            manifest, guard = write(threshold), Guard.load(bundle)
            if guard.artifact.sha256 != first:  # quantized again to other bytes: the first scores are not its own
                log.info("the artifact changed on export; scoring dev again ...")
                scores["dev"] = score_with_guard(guard, dev, progress)
    reports: dict[str, dict[str, Any]] = {}
    agreement = ""
    for name, ds in eval_sets.items():
        if ds is None:
            continue
        if name not in scores:
            log.info("scoring %s (%d rows) with the %s bundle ...", name, len(ds), guard.artifact.precision)
            scores[name] = score_with_guard(guard, ds, progress)
        reports[name] = report(ds["label"], scores[name], ds["source"], levels_of(ds), guard.threshold)
        write_report(reports[name], model_dir.parent, f"eval_{name}_bundle", f"{name}, {guard.artifact.path}")
        if name == "dev":
            agreement = _agreement_note(scores[name], dev_scores, dev_report["threshold"], guard,
                                        recipe.train.max_length)
            log.info("%s", agreement)
    titled = {"dev (PyTorch model, before export)": dev_report,
              **{f"{k} ({guard.artifact.path})": v for k, v in reports.items()}}
    tables = [EvaluationTable(title, result["overall"], to_markdown(result, title)) for title, result in titled.items()]
    write_model_card(bundle, manifest, evaluation=tables, note=calibrated + agreement)
    return bundle, reports


def _agreement_note(bundle_scores: np.ndarray, torch_scores: np.ndarray, torch_threshold: float, guard: Any,
                    train_max_length: int) -> str:
    """How far the exported bundle strays from the PyTorch model on dev, each at its own threshold, in words for
    the model card."""
    same = float(np.mean((bundle_scores >= guard.threshold) == (torch_scores >= torch_threshold)))
    diff = np.abs(bundle_scores - torch_scores)
    return (f"On the {len(diff):,} dev rows, `{guard.artifact.path}` (windows of {guard.manifest.max_length} tokens) "
            f"and the PyTorch model (windows of {train_max_length}) make the same decision on {100 * same:.2f}% "
            f"of rows; |ΔP(unsafe)| is {diff.mean():.4f} on average and {np.median(diff):.1e} at the median.")
