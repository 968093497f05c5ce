"""guard-sdk eval: a bundle or a checkpoint on labelled data (needs the train extra)."""

from __future__ import annotations

import argparse
import sys
from typing import IO

from guard_sdk.cli.options import (
    EXIT_OK,
    Subparsers,
    add_data_dir,
    add_output,
    add_quiet,
    add_runtime,
    command,
    csv,
    mapping,
    positive_int,
    probability,
    show_progress,
    training_module,
)
from guard_sdk.errors import InputError


def register(sub: Subparsers) -> None:
    ev = command(
        sub, "eval",
        help="precision, recall, F1, AUPRC and FPR of a guard on labelled data",
        description="Score labelled data with a guard bundle (through the runtime) or a PyTorch checkpoint and "
        "print precision, recall, F1, AUPRC and false-positive rate at the threshold, overall, per level "
        "(prompt / response) and per source, as a markdown table; --output also writes them as JSON. "
        "Needs: pip install 'guard-sdk[train]'.",
        examples="  guard-sdk eval --data xstest                       # the default guard\n"
        "  guard-sdk eval --bundle my-guard --data build/finetune/default-guard/data --split test\n"
        "  guard-sdk eval --checkpoint ckpt --data mine.csv --columns prompt=text,label=is_harmful",
    )
    ev.add_argument("--data", "-d", type=csv, required=True,
                    help="comma-separated: built-in source names (e.g. xstest), data files (.jsonl .json .csv "
                    ".parquet), saved dataset folders, or hub ids")
    ev.add_argument("--checkpoint", help="score a PyTorch checkpoint instead of a bundle")
    ev.add_argument("--max-length", type=positive_int, default=512,
                    help="with --checkpoint: tokens per window, as a bundle of that max_length scores (default: 512)")
    ev.add_argument("--split", help="split of a saved DatasetDict or a hub dataset (e.g. dev, test)")
    ev.add_argument("--columns", type=mapping, default=None,
                    help="your column names for data files: prompt=NAME,response=NAME,label=NAME,category=NAME")
    add_data_dir(ev)
    ev.add_argument("--threshold", "-t", type=probability, default=None,
                    help="decision cut (default: the bundle's; 0.5 for a checkpoint)")
    add_output(ev, "also write eval.json and eval.md to this folder", legacy=("--out",))
    add_runtime(ev)
    add_quiet(ev)
    ev.set_defaults(run=run_eval, extra="train")


def run_eval(args: argparse.Namespace, out: IO[str]) -> int:
    show_progress(not args.quiet)  # our lines; not the CUDA-kernel warnings torchao prints when transformers imports it
    data = training_module("data")
    evaluate = training_module("evaluate")
    dataset = data.concat([data.load_data(spec, root=args.data_dir, columns=args.columns, split=args.split)
                           for spec in args.data])
    unlabelled = sum(label is None for label in dataset["label"])
    if unlabelled:
        raise InputError(f"{unlabelled} rows have no label (e.g. hh_harmless_base); evaluation needs labels")
    if args.checkpoint:
        scores = evaluate.score_with_checkpoint(args.checkpoint, dataset, args.max_length, progress=not args.quiet)
        threshold, what = (0.5 if args.threshold is None else args.threshold), f"checkpoint {args.checkpoint}"
    else:
        from guard_sdk.guard import Guard

        guard = Guard.load(args.bundle, backend=args.backend, precision=args.precision, threads=args.threads)
        scores = evaluate.score_with_guard(guard, dataset, progress=not args.quiet)
        threshold = guard.threshold if args.threshold is None else args.threshold
        what = f"{guard.manifest.name} ({guard.artifact.path}, {guard.backend.name})"
    result = evaluate.report(dataset["label"], scores, dataset["source"], evaluate.levels_of(dataset), threshold)
    title = f"{', '.join(args.data)}{f' [{args.split}]' if args.split else ''}: {what}"
    if args.output:
        json_path, md_path = evaluate.write_report(result, args.output, "eval", title)
        print(f"guard-sdk: wrote {json_path} and {md_path}", file=sys.stderr)
    out.write(evaluate.to_markdown(result, title))
    return EXIT_OK
