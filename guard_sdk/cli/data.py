"""guard-sdk data: the training mix a recipe builds, before anything trains (needs the train extra)."""

from __future__ import annotations

import argparse
import sys
from typing import IO

from guard_sdk.cli.options import (
    EXIT_OK,
    Subparsers,
    add_data_dir,
    add_output,
    add_recipe,
    add_set,
    command,
    training_module,
)


def register(sub: Subparsers) -> None:
    d = command(
        sub, "data",
        help="the training mix of a recipe: rows per source, label, split and category, with licences",
        description="Build the splits a training recipe's data section makes (the same rows, by seed, that "
        "finetune and distill train on) and print them as a markdown table: train rows per source and label, "
        "dev and test rows, the most common categories, each source's licence (NC: non-commercial, which a "
        "model card of a model trained on it must list), and the evaluation-only sources held out; then the "
        "unsafe rows per category of the harm taxonomy (docs/taxonomy.md) in each split and held out. "
        "Needs: pip install 'guard-sdk[train]'.",
        examples="  guard-sdk data --recipe training/recipes/broad-student.yaml\n"
        "  guard-sdk data --recipe training/recipes/broad-student.yaml -o docs/data-mix.md",
    )
    add_recipe(d, "training recipe YAML file whose data section to build")
    add_output(d, "also write the table to this markdown file", kind="file")
    add_data_dir(d)
    add_set(d, "data.max_train_rows_per_source=1000", records=False)
    d.set_defaults(run=run_data, extra="train")


def run_data(args: argparse.Namespace, out: IO[str]) -> int:
    recipe = training_module("recipe").load_recipe(args.recipe, args.overrides)
    splits, holdout = training_module("finetune").build_splits(recipe.data, args.data_dir)
    table = training_module("data.mix").mix_table(dict(splits), holdout)
    out.write(table)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(f"# Training mix of {recipe.name}\n\n{table}", encoding="utf-8")
        print(f"guard-sdk: wrote {args.output}", file=sys.stderr)
    return EXIT_OK
