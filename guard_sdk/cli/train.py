"""guard-sdk finetune, distill and ablation: recipe-driven training (needs the train and export extras)."""

from __future__ import annotations

import argparse
import json
from typing import IO

from guard_sdk.cli.options import (
    EXIT_OK,
    Subparsers,
    add_data_dir,
    add_output,
    add_quiet,
    add_recipe,
    add_set,
    command,
    output_override,
    show_progress,
    training_module,
)
from guard_sdk.errors import InputError

TRAIN_EXTRA = "train,export"


def _add_training_options(p: argparse.ArgumentParser) -> None:
    add_recipe(p)
    add_output(p, "where checkpoints, splits and reports go (default: the recipe's output_dir)")
    add_data_dir(p)
    add_set(p, "train.max_length=256")
    p.add_argument("--no-export", action="store_true", help="stop after training and dev calibration")
    add_quiet(p)
    p.set_defaults(run=run_finetune, extra=TRAIN_EXTRA)


def register(sub: Subparsers) -> None:
    f = command(
        sub, "finetune",
        help="fine-tune a student guard on labelled seed data from a recipe",
        description="Run a training recipe (a YAML file that names every knob; see training/recipes/): build "
        "train/dev/test splits by seed with no near-duplicate across them, fine-tune with the Hugging Face "
        "Trainer on class-balanced batches, calibrate the threshold on dev, and (if the recipe has an export "
        "section) export a guard bundle and evaluate it. A killed run resumes from its last checkpoint when "
        "run again. Needs: pip install 'guard-sdk[train,export]'.",
        examples="  guard-sdk finetune --recipe training/recipes/default-guard.yaml",
    )
    _add_training_options(f)

    d = command(
        sub, "distill",
        help="distil a teacher into a student guard: seed data plus HarmAug rows, hard and soft labels",
        description="Run a training recipe with a distill section: the teacher scores the train split and the "
        "rows of HarmAug runs (cached in distill.score_cache by each row's text, resumable, shared by recipes "
        "with the same teacher and data); a HarmAug row's hard label is the teacher's score > 0.5. The student "
        "learns with ce_weight x cross-entropy on the hard label + kl_weight x KL(teacher || student) on the "
        "teacher's P(unsafe) at the recipe's temperature. Splits, class-balanced batches, calibration, export "
        "and resuming are as in finetune. Needs: pip install 'guard-sdk[train,export]'.",
        examples="  guard-sdk distill --recipe training/recipes/NAME.yaml",
    )
    _add_training_options(d)

    a = command(
        sub, "ablation",
        help="HarmAug's ablation: train the rows of an ablation file that are missing, score all, write the table",
        description="Run an ablation file (training/recipes/ablation-offline.yaml): each row is a training recipe "
        "(plain fine-tuning or distillation). Rows without a finished model are trained, plain ones first (a "
        "distillation's teacher is one), without export; every model is scored in PyTorch on the same dev, test "
        "and holdout rows at its own dev-calibrated threshold; a markdown table with F1, AUPRC, holdout "
        "false-positive rates and the rows each model saw is written to the file's `table`, with the verdict on "
        "shipping the candidate row. With `suite: public` in the file (training/recipes/ablation-broad.yaml) rows "
        "may train on different data, every model is also scored on every public evaluation set (guard-sdk eval "
        "--suite public) and the shipping rule is judged there: a higher mean F1, no set's F1 down by more than "
        "max_f1_loss and no set's FPR up by more than max_fpr_rise. A killed run resumes. Prints the figures as JSON. "
        "Needs: pip install 'guard-sdk[train,export]'.",
        examples="  guard-sdk ablation --recipe training/recipes/ablation-offline.yaml\n"
        "  guard-sdk ablation --recipe training/recipes/ablation-broad.yaml   # judged on the public sets",
    )
    add_recipe(a, "ablation YAML file")
    add_output(a, "the markdown table to write (default: the file's table)", kind="file")
    add_set(a, "ship.fpr_source=xstest")
    add_data_dir(a)
    add_quiet(a)
    a.set_defaults(run=run_ablation, extra=TRAIN_EXTRA)


def run_finetune(args: argparse.Namespace, out: IO[str]) -> int:
    recipe_mod = training_module("recipe")
    finetune_mod = training_module("finetune")
    recipe = recipe_mod.load_recipe(args.recipe, args.overrides)  # refused here, before anything is touched
    if (args.command == "distill") != (recipe.distill is not None):
        raise InputError(f"{args.recipe}: `guard-sdk distill` runs recipes with a distill section and "
                         "`guard-sdk finetune` those without one (distill: null)")
    show_progress(not args.quiet)
    result = finetune_mod.finetune(recipe, recipe_path=str(args.recipe), data_dir=args.data_dir,
                                   output_dir=args.output and str(args.output), export=not args.no_export,
                                   progress=not args.quiet)
    if result is None:  # a helper process of a multi-process run: the main one reports
        return EXIT_OK
    out.write(f"model: {result.model_dir}\nthreshold: {result.threshold:.4f} ({recipe.calibration.rule} on dev)\n")
    if result.bundle is not None:
        out.write(f"bundle: {result.bundle}\n")
        for name, rep in result.bundle_reports.items():
            m = rep["overall"]
            out.write(f"  {name}: F1 {m['f1'] or 0:.3f}  AUPRC {m['auprc'] or 0:.3f}  FPR {m['fpr'] or 0:.3f}  "
                      f"({m['n']} rows)\n")
    return EXIT_OK


def run_ablation(args: argparse.Namespace, out: IO[str]) -> int:
    ablation = training_module("experiments.ablation")
    overrides = [*args.overrides, *output_override("table", args.output)]
    ablation.load_ablation(args.recipe, overrides)  # every recipe refused here, before anything trains
    show_progress(not args.quiet)
    result = ablation.run_ablation(args.recipe, data_dir=args.data_dir, overrides=overrides,
                                   progress=not args.quiet)
    out.write(json.dumps(result, indent=2) + "\n")
    return EXIT_OK
