"""guard-sdk adapt and dapt-experiment: DAPT's few-shot adaptation (needs the train and export extras)."""

from __future__ import annotations

import argparse
import json
import sys
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
    csv,
    mapping,
    output_override,
    positive_int,
    show_progress,
    training_module,
)


def register(sub: Subparsers) -> None:
    ad = command(
        sub, "adapt",
        help="teach a guard a new rule from a few examples (DAPT): nearest known rows + prompt tuning or LoRA",
        description="Few-shot adaptation as in DAPT (Balashankar et al., 2023). The examples (labelled rows of the "
        "new rule: 1 unsafe, 0 safe) and the pool (labelled rows of the rules the guard already knows) are embedded "
        "with a sentence encoder (the packaged all-MiniLM-L6-v2 by default); each example brings its k nearest "
        "pool rows above a similarity cut, labelled as the recipe says; then peft trains prompt tuning or LoRA on "
        "examples + neighbours with the base weights frozen (or, with --method full, every weight). OUT/model is a "
        "plain checkpoint (LoRA merged, prompt tuning's virtual tokens baked into the vocabulary) that `guard-sdk "
        "export` turns into a bundle. Duplicate examples are used once; examples found in the pool leave the pool; "
        "fewer examples than --shots are all used, with a warning; an empty pool is refused. The recipe (default: "
        "the shipped adapt.yaml) names k, the cut, the labelling and every training knob. "
        "Needs: pip install 'guard-sdk[train,export]'.",
        examples="  guard-sdk adapt --base build/finetune/default-guard/model --examples few.jsonl \\\n"
        "      --pool build/finetune/default-guard/data --pool-split train -o build/adapt/my-rule\n"
        "  guard-sdk export build/adapt/my-rule/model -o my-guard",
    )
    ad.add_argument("--base", required=True, help="the guard checkpoint to adapt (a folder or hub id)")
    ad.add_argument("--examples", required=True,
                    help="labelled examples of the new rule: a data file (.jsonl .json .csv .parquet) or dataset")
    ad.add_argument("--pool", type=csv, default=None,
                    help="comma-separated labelled rows of the known rules (as for eval: built-in sources, files, "
                    "saved datasets, hub ids); needed unless neighbours.k is 0")
    ad.add_argument("--pool-split", help="split of a saved DatasetDict or hub dataset in --pool (e.g. train)")
    ad.add_argument("--columns", type=mapping, default=None,
                    help="your column names in --examples: prompt=NAME,response=NAME,label=NAME")
    ad.add_argument("--method", choices=("prompt-tuning", "lora", "full"),
                    help="what trains (default: the recipe's, prompt-tuning)")
    ad.add_argument("--shots", type=positive_int, help="use this many examples, drawn by the recipe's seed "
                    "(default: all)")
    add_recipe(ad, "adapt recipe YAML (default: the shipped adapt.yaml)", required=False)
    add_set(ad, "neighbours.k=16")
    add_data_dir(ad, recipe=False)
    add_output(ad, "output folder; OUT/model is the checkpoint", required=True)
    add_quiet(ad)
    ad.set_defaults(run=run_adapt, extra="train,export")

    dx = command(
        sub, "dapt-experiment",
        help="test DAPT's claim on our data: HarmBench categories as new rules, four ways to adapt, a table",
        description="Run a DAPT experiment file (training/recipes/dapt-harmbench.yaml). Each HarmBench semantic "
        "category it names is in turn the new rule: a base guard is trained without it, then gets k of its rows "
        "(and k safe rows) per seed and adapts by (a) full fine-tuning on the examples, (b) PEFT on the examples, "
        "(c) neighbours + full fine-tuning, (d) DAPT: neighbours + PEFT. F1 and AUPRC on the rule's held-out rows "
        "and on the known rules (forgetting), mean and spread over seeds, go to the file's `table`. Each run's "
        "figures are kept under its output_dir, so a killed run resumes. Needs: pip install 'guard-sdk[train]'.",
        examples="  guard-sdk dapt-experiment --recipe training/recipes/dapt-harmbench.yaml\n"
        "  guard-sdk dapt-experiment --recipe training/recipes/dapt-harmbench.yaml --set 'rules=[illegal]'",
    )
    add_recipe(dx, "experiment YAML file")
    add_output(dx, "the markdown table to write (default: the file's table)", kind="file")
    add_set(dx, "'seeds=[0]'")
    add_data_dir(dx)
    add_quiet(dx)
    dx.set_defaults(run=run_dapt_experiment, extra="train")


def run_adapt(args: argparse.Namespace, out: IO[str]) -> int:
    recipes = training_module("dapt.recipe")
    recipe = recipes.load_adapt_recipe(args.recipe, args.overrides, args.method)  # refused before any loading
    data = training_module("data")
    adapt = training_module("dapt.adapt")
    examples = data.load_data(args.examples, root=args.data_dir, columns=args.columns)
    pool = None
    if args.pool and recipe.neighbours.k > 0:
        pool = data.concat([data.load_data(p, root=args.data_dir, split=args.pool_split) for p in args.pool])
    show_progress(not args.quiet)
    command = "guard-sdk " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["adapt"] else None
    inputs = {"examples": args.examples, "pool": list(args.pool or []), "pool_split": args.pool_split}
    model_dir = adapt.adapt(args.base, examples, pool, recipe, args.output, shots=args.shots, command=command,
                            inputs=inputs, progress=not args.quiet)
    out.write(f"model: {model_dir}\nexport it: guard-sdk export {model_dir} -o BUNDLE\n")
    return EXIT_OK


def run_dapt_experiment(args: argparse.Namespace, out: IO[str]) -> int:
    overrides = [*args.overrides, *output_override("table", args.output)]
    recipe = training_module("dapt.recipe").load_experiment(args.recipe, overrides)
    experiment = training_module("experiments.dapt")
    show_progress(not args.quiet)
    summary = experiment.run_experiment(recipe, recipe_path=str(args.recipe), data_dir=args.data_dir,
                                        progress=not args.quiet)
    out.write(json.dumps(summary, indent=2) + "\n")
    out.write(f"table: {recipe.table}\n")
    return EXIT_OK
