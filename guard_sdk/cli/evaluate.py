"""guard-sdk eval: a bundle or a checkpoint on labelled data or on the public suite (needs the train extra)."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import IO, Any

from guard_sdk.cli.options import (
    EXIT_OK,
    Subparsers,
    add_data_dir,
    add_output,
    add_quiet,
    add_runtime,
    add_trusted_keys,
    command,
    csv,
    mapping,
    positive_int,
    probability,
    show_progress,
    training_module,
)
from guard_sdk.errors import InputError

# The markers of --docs and --model-card (guard_sdk.training.public_suite.BEGIN and END; the help cannot import it).
SUITE_BEGIN = "<!-- guard-sdk eval --suite public: BEGIN -->"
SUITE_END = "<!-- guard-sdk eval --suite public: END -->"


def _paragraphs(*texts: str) -> str:
    return "\n\n".join(textwrap.fill(t, 100, break_on_hyphens=False) for t in texts)


def register(sub: Subparsers) -> None:
    ev = command(
        sub, "eval",
        help="precision, recall, F1, AUPRC and FPR of a guard on labelled data, or on the public evaluation suite",
        description=_paragraphs(
            "Score labelled data with a guard bundle (through the runtime) or a PyTorch checkpoint and print "
            "precision, recall, F1, AUPRC and false-positive rate at the threshold, overall, per level (prompt / "
            "response) and per source, as a markdown table; --output also writes them as JSON.",
            "--suite public instead scores the guard on every public evaluation set, each read by its built-in "
            "reader from the shared data folder (--data-dir, else $GUARD_DATA_DIR, else ../shared/data; a set whose "
            "files are missing there is an error, not skipped): XSTest prompts and XSTest responses, HateCheck, "
            "CoCoNot (safety-concern requests against its other non-compliance requests) and its contrast set (FPR "
            "only: every row is safe), the DiaSafety and ConvAbuse test splits, ToxicChat (the project's test split) "
            "and MultiJail (recall per language: every row is unsafe). Each distinct text of a set is scored once, "
            "at one threshold (the bundle's; 0.5 for a checkpoint; or --threshold), and one markdown table gives "
            "rows, F1, AUPRC, recall and FPR per set. Under it, a second table quotes what other guards' papers "
            "report on these sets (training/experiments/published_figures.yaml; context, not measured here).",
            "--output writes suite.json and suite.md. --docs FILE and --model-card (the bundle's MODEL_CARD.md) "
            "put the same tables between these two lines, replacing only what lies between them; a file without "
            "them gets them at its end, a missing --docs file is created:",
        ) + f"\n  {SUITE_BEGIN}\n  {SUITE_END}\n\nNeeds: pip install 'guard-sdk[train]'.",
        examples="  guard-sdk eval --data xstest                       # the default guard\n"
        "  guard-sdk eval --bundle my-guard --data build/finetune/default-guard/data --split test\n"
        "  guard-sdk eval --checkpoint ckpt --data mine.csv --columns prompt=text,label=is_harmful\n"
        "  guard-sdk eval --suite public                      # the default guard on every public set\n"
        "  guard-sdk eval --suite public --bundle my-guard --model-card --docs docs/quality.md -o build/suite\n"
        "  guard-sdk eval --suite evasion --docs docs/evasion.md   # the default guard under every disguise",
    )
    what = ev.add_mutually_exclusive_group(required=True)
    what.add_argument("--data", "-d", type=csv,
                      help="comma-separated: built-in source names (e.g. xstest), data files (.jsonl .json .csv "
                      ".parquet), saved dataset folders, or hub ids")
    what.add_argument("--suite", choices=("public", "evasion"),
                      help="public: every public evaluation set in the data folder, one row each (see above); "
                      "evasion: 300 prompts of our own (harmful, benign, benign but alarming) under 17 disguises "
                      "(spaced letters, base64, leetspeak, look-alike letters, role-play, padding, ...): detection "
                      "and false positives per disguise")
    ev.add_argument("--checkpoint", help="score a PyTorch checkpoint instead of a bundle")
    ev.add_argument("--max-length", type=positive_int, default=512,
                    help="with --checkpoint: tokens per window, as a bundle of that max_length scores (default: 512)")
    ev.add_argument("--split", help="with --data: split of a saved DatasetDict or a hub dataset (e.g. dev, test)")
    ev.add_argument("--columns", type=mapping, default=None,
                    help="with --data: your column names for data files: prompt=NAME,response=NAME,label=NAME,"
                    "category=NAME")
    add_data_dir(ev, recipe=False)
    ev.add_argument("--threshold", "-t", type=probability, default=None,
                    help="decision cut (default: the bundle's; 0.5 for a checkpoint)")
    add_output(ev, "also write eval.json and eval.md (with --suite: suite.json and suite.md) to this folder")
    ev.add_argument("--docs", type=Path, metavar="FILE",
                    help="with --suite: write the suite's tables into this markdown file between the marker "
                    "comments, replacing only what is between them (markers missing: added at the end; file "
                    "missing: created)")
    ev.add_argument("--model-card", action="store_true",
                    help="with --suite and a bundle: the same, into the bundle's MODEL_CARD.md (not covered by the "
                    "hashes in guard.json, so the bundle still verifies), under a 'Public evaluation suite' heading")
    add_runtime(ev)
    add_trusted_keys(ev)
    add_quiet(ev)
    ev.set_defaults(run=run_eval, extra="train")


def run_eval(args: argparse.Namespace, out: IO[str]) -> int:
    if args.suite:
        return run_suite(args, out)
    if args.docs or args.model_card:
        raise InputError("--docs and --model-card write the tables of --suite public; with --data, use --output")
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

        guard = Guard.load(args.bundle, backend=args.backend, precision=args.precision, threads=args.threads,
                           trusted_keys=args.trusted_keys)
        verdicts = evaluate.verdicts_with_guard(guard, dataset, progress=not args.quiet)
        scores = [v.score for v in verdicts]
        threshold = guard.threshold if args.threshold is None else args.threshold
        what = f"{guard.manifest.name} ({guard.artifact.path}, {guard.backend.name})"
    result = evaluate.report(dataset["label"], scores, dataset["source"], evaluate.levels_of(dataset), threshold)
    if not args.checkpoint and guard.categories:
        thresholds = {c.name: c.threshold for c in guard.manifest.categories}
        categories = evaluate.category_report(dataset, [v.categories for v in verdicts], thresholds)
        if categories is not None:
            result["categories"] = categories
    title = f"{', '.join(args.data)}{f' [{args.split}]' if args.split else ''}: {what}"
    if args.output:
        json_path, md_path = evaluate.write_report(result, args.output, "eval", title)
        print(f"guard-sdk: wrote {json_path} and {md_path}", file=sys.stderr)
    out.write(evaluate.to_markdown(result, title))
    return EXIT_OK


def run_suite(args: argparse.Namespace, out: IO[str]) -> int:
    """eval --suite: every set of the suite scored by one guard at one threshold, as one table."""
    wrong = [flag for flag, value in (("--split", args.split), ("--columns", args.columns)) if value]
    if wrong:
        raise InputError(f"{' and '.join(wrong)} appl{'y' if len(wrong) > 1 else 'ies'} to --data; --suite reads "
                         "each set with its built-in reader")
    if args.model_card and args.checkpoint:
        raise InputError("--model-card writes into a bundle's MODEL_CARD.md, and --checkpoint scores no bundle; "
                         "use --docs FILE")
    show_progress(not args.quiet)
    evaluate = training_module("evaluate")
    suite = training_module("public_suite")
    progress = not args.quiet
    if args.checkpoint:
        scorer = evaluate.checkpoint_scorer(args.checkpoint, args.max_length, progress=progress)
        threshold, what = (0.5 if args.threshold is None else args.threshold), f"checkpoint {args.checkpoint}"
    else:
        from guard_sdk.guard import Guard

        guard = Guard.load(args.bundle, backend=args.backend, precision=args.precision, threads=args.threads,
                           trusted_keys=args.trusted_keys)
        scorer = evaluate.guard_scorer(guard, progress)
        threshold = guard.threshold if args.threshold is None else args.threshold
        what = f"{guard.manifest.name} ({guard.artifact.path}, {guard.backend.name})"
    if args.suite == "evasion":
        return _run_evasion(args, scorer, threshold, what, out)
    sets = suite.SUITES[args.suite]
    result = suite.run_suite(scorer, threshold, what, root=args.data_dir, sets=sets)
    markdown = suite.to_markdown(result, sets)
    if args.output:
        json_path, md_path = suite.write_suite(result, args.output, sets)
        print(f"guard-sdk: wrote {json_path} and {md_path}", file=sys.stderr)
    if args.docs:
        print(f"guard-sdk: updated {suite.update_marked(args.docs, markdown)}", file=sys.stderr)
    if args.model_card:
        print(f"guard-sdk: updated {suite.update_model_card(guard.path, markdown)}", file=sys.stderr)
    out.write(markdown)
    return EXIT_OK


def _run_evasion(args: argparse.Namespace, scorer: Any, threshold: float, what: str, out: IO[str]) -> int:
    """eval --suite evasion: the suite's prompts under every disguise, one row per disguise."""
    if args.model_card:
        raise InputError("--model-card writes the public suite's tables; for --suite evasion use --docs FILE")
    evasion = training_module("evasion.suite")
    result = evasion.run_evasion(scorer, threshold, what)
    markdown = evasion.to_markdown(result)
    if args.output:
        json_path, md_path = evasion.write_evasion(result, args.output)
        print(f"guard-sdk: wrote {json_path} and {md_path}", file=sys.stderr)
    if args.docs:
        print(f"guard-sdk: updated {evasion.update_docs(args.docs, markdown)}", file=sys.stderr)
    out.write(markdown)
    return EXIT_OK
