"""guard-sdk augment instructions|responses|label: HarmAug's stages from a recipe (needs the train extra)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import IO, Any

from guard_sdk.cli.options import (
    EXIT_OK,
    Subparsers,
    add_data_dir,
    add_output,
    add_quiet,
    add_recipe,
    add_set,
    command,
    positive_int,
    show_progress,
    training_module,
)
from guard_sdk.errors import InputError

STAGES = ("instructions", "responses", "label", "export")
LABEL_HELP = ("label: score every kept instruction (as a prompt) and every response with the recipe's teacher: a "
              "Llama-Guard-style causal LM (the Llama Guard 3 task; the softmax over the 'safe'/'unsafe' first-token "
              "logits), locally or over an OpenAI-compatible server with logprobs, or a sequence classifier (a guard "
              "bundle, a checkpoint, or `default`, the embedded guard). Each row keeps the soft score and the "
              "teacher's name, cached by its text.")


def _add_stage_options(p: argparse.ArgumentParser) -> None:
    add_recipe(p, "augmentation recipe YAML file")
    add_output(p, "where the stage folders go (default: the recipe's output_dir)")
    add_set(p, "instructions.k=4")
    add_quiet(p)
    p.set_defaults(run=run_augment, extra="train")


def register(sub: Subparsers) -> None:
    a = command(
        sub, "augment",
        help="HarmAug: generate harmful instructions, answer each twice, label them with the teacher",
        description="Run one stage of a HarmAug augmentation recipe (a YAML file; see training/recipes/). "
        "instructions: an LLM is shown k harmful seed prompts and asked for one more, its answer prefilled with "
        "an affirmative prefix; what it writes is parsed, length-filtered and deduplicated (also against the "
        "seed data). responses: each kept instruction is answered twice, once prefilled to comply and once "
        f"plainly. {LABEL_HELP} export: the kept instructions as a labelled jsonl file, each labelled by its "
        "request's intent (--intent), for a training recipe's data. Rows go to Parquet shards under the recipe's "
        "output_dir as they complete; a "
        "killed run, run again, does only what is missing. Prints the stage's summary as JSON (also kept in "
        "summary.json). Models run locally (transformers, GGUF files included, CPU or CUDA) or on an "
        "OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp). Needs: pip install 'guard-sdk[train]'.",
        examples="  guard-sdk augment instructions --recipe training/recipes/augment-offline.yaml\n"
        "  guard-sdk augment responses --recipe training/recipes/augment-offline.yaml\n"
        "  guard-sdk augment label --recipe training/recipes/augment-offline.yaml\n"
        "  guard-sdk augment export --recipe training/recipes/augment-lookalikes.yaml --intent safe "
        "--to build/augment/lookalikes/intended.jsonl",
    )
    a.add_argument("stage", choices=STAGES, help="which stage to run")
    _add_stage_options(a)
    add_data_dir(a)  # the seed data the instructions stage shows the generator
    a.add_argument("--intent", choices=("safe", "unsafe"),
                   help="export: the label every kept instruction gets, the one its request asked for (a benign "
                   "look-alike recipe's instructions are safe by construction)")
    a.add_argument("--to", type=Path, help="export: the jsonl file to write (prompt, label, category; a training "
                   "recipe lists it among its data sources, its rows named by the file)")
    a.add_argument("--count", type=positive_int,
                   help="instructions: generation requests (default: the recipe's instructions.count); a larger "
                   "count on a finished folder asks only the new ones")

    lb = command(
        sub, "label",
        help="the same as `augment label` (kept for scripts written before it moved)",
        description=f"The same as `guard-sdk augment label`. {LABEL_HELP} Resumable like `augment`. "
        "Needs: pip install 'guard-sdk[train]'.",
        examples="  guard-sdk label --recipe training/recipes/augment-offline.yaml",
    )
    _add_stage_options(lb)
    lb.set_defaults(stage="label", count=None, data_dir=None, intent=None, to=None)


def _recipe(args: argparse.Namespace) -> Any:
    """The recipe with the command line's overrides; refused before any model is loaded."""
    recipe = training_module("harmaug.recipe").load_augment_recipe(args.recipe, args.overrides)
    if args.output:
        recipe = dataclasses.replace(recipe, output_dir=str(args.output))
    if args.count:
        recipe = dataclasses.replace(recipe, instructions=dataclasses.replace(recipe.instructions, count=args.count))
    return recipe


def run_augment(args: argparse.Namespace, out: IO[str]) -> int:
    if args.data_dir and args.stage != "instructions":
        raise InputError(f"--data-dir is for `augment instructions` (the seed data); {args.stage} reads the "
                         "instructions stage's output")
    if (args.stage == "export") != (args.intent is not None and args.to is not None) or \
            (args.stage != "export" and (args.intent or args.to)):
        raise InputError("--intent and --to go together, with `augment export` only")
    recipe = _recipe(args)
    show_progress(not args.quiet)
    run = training_module("harmaug.run")
    if args.stage == "export":
        summary = run.export_instructions(recipe, int(args.intent == "unsafe"), args.to)
    elif args.stage == "instructions":
        summary = run.run_instructions(recipe, data_dir=args.data_dir, progress=not args.quiet)
    elif args.stage == "responses":
        summary = run.run_responses(recipe, progress=not args.quiet)
    else:
        summary = run.run_labels(recipe, progress=not args.quiet)
    out.write(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK
