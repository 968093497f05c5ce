"""guard-sdk bench: latency, memory, load time and size, each configuration in its own process."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import IO

from guard_sdk.cli.options import (
    EXIT_FAILURE,
    EXIT_OK,
    Subparsers,
    add_bundle,
    add_data_dir,
    add_output,
    add_quiet,
    command,
    csv,
    positive_int,
    positive_ints,
    training_module,
)
from guard_sdk.errors import InputError


def thread_counts(value: str) -> tuple[int | None, ...]:
    """Comma-separated positive counts and ``default``: None, threads left unset as a user who names none
    leaves them, so the runtime's own choice is measured beside the counts it chooses between."""
    counts = tuple(None if part == "default" else positive_int(part) for part in csv(value))
    if not counts:
        raise argparse.ArgumentTypeError("name at least one thread count, or default")
    return counts


def register(sub: Subparsers) -> None:
    b = command(
        sub, "bench",
        help="latency, memory, load time and size of a bundle's artifacts, each configuration in its own process",
        description="For every artifact of the bundle(s) that a chosen backend runs here, at each thread count "
        "and input length (tokens across the input's windows): cold load time, first call, then p50/p90/p99 and "
        "trimmed-mean latency of RUNS classify calls after WARMUP, inputs per second, peak resident memory and "
        "file size. Each configuration runs in a fresh process, so one's memory and thread pools never touch the "
        "next's. Prints a markdown table with the machine (CPU, cores, instruction-set flags, library versions); "
        "--output also writes results.json, RESULTS.md and latency.png.",
        examples="  guard-sdk bench                                  # the embedded default guard\n"
        "  guard-sdk bench -b build/student-shape --backends onnxruntime --tokens 128 --threads 1,2 -o bench/",
    )
    add_bundle(b, "guard bundle folder, or 'default'; repeat for several (default: the embedded default guard)",
               repeat=True)
    b.add_argument("--backends", type=csv, default=None, help="comma-separated backends (default: all that run here)")
    b.add_argument("--precisions", type=csv, default=None,
                   help="comma-separated precisions (default: every artifact of the bundle)")
    b.add_argument("--tokens", type=positive_ints, default=(16, 64, 128, 256, 512),
                   help="comma-separated input lengths in tokens (default: 16,64,128,256,512)")
    b.add_argument("--threads", type=thread_counts, default=(None, 1, 2),
                   help="comma-separated thread counts, and 'default' for Guard.load's own choice with threads unset, "
                   "reported beside the fastest count (default: default,1,2)")
    b.add_argument("--batch", type=positive_int, default=1, help="inputs per classify_batch call (default: 1)")
    b.add_argument("--runs", type=positive_int, default=100, help="timed calls per configuration (default: 100)")
    b.add_argument("--warmup", type=positive_int, default=10, help="untimed calls after the first (default: 10)")
    b.add_argument("--references", action="store_true",
                   help="also time transformers' pipeline (PyTorch) and optimum's ORTModel pipeline on the bundle's "
                   "source checkpoint, at the lengths that fit one window, and print our speed-up over each; "
                   "needs guard-sdk[export]")
    b.add_argument("--checkpoint", type=Path, help="with --references: the checkpoint (default: the bundle's source)")
    b.add_argument("--data", type=csv, default=None,
                   help="labelled rows (as for eval) on which each artifact's F1 and distance from fp32 are measured; "
                   "needs guard-sdk[train]")
    b.add_argument("--split", help="with --data: the split of a saved dataset or hub dataset (e.g. dev)")
    add_data_dir(b, recipe=False)
    b.add_argument("--quality-rows", type=positive_int, default=1000,
                   help="with --data: the first N rows (default: 1000)")
    b.add_argument("--serve", action="store_true",
                   help="instead, the load test of guard-sdk serve on loopback: requests per second and p50/p99 at "
                   "each --clients count, beside one process calling classify() in a loop on the same texts; with "
                   "--output, the table goes into OUTPUT/RESULTS.md between its markers (needs guard-sdk[serve])")
    b.add_argument("--clients", type=positive_ints, default=(1, 8, 64),
                   help="with --serve: concurrent clients per row (default: 1,8,64)")
    b.add_argument("--requests", type=positive_int, default=2000,
                   help="with --serve: at most this many requests per row (default: 2000)")
    b.add_argument("--seconds", type=positive_int, default=60,
                   help="with --serve: at most this many seconds per row (default: 60)")
    add_output(b, "also write results.json, RESULTS.md, latency.png (and with --data size_f1.png) here")
    add_quiet(b)
    b.set_defaults(run=run_bench, extra="bench")


def run_load(args: argparse.Namespace, out: IO[str]) -> int:
    """bench --serve: the load test of guard-sdk serve beside the in-process loop."""
    args.extra = "serve"
    from guard_sdk.bench.load import load_test, to_markdown, write_results

    bundles = args.bundle or [None]
    if len(bundles) > 1:
        raise InputError("--serve load-tests one bundle at a time")
    threads = args.threads[0] if len(args.threads) == 1 and args.threads[0] is not None else 1
    result = load_test(bundles[0], threads, args.clients, args.requests, float(args.seconds))
    out.write(to_markdown(result))
    if args.output:
        out.write(f"wrote {write_results(result, Path(args.output) / 'RESULTS.md')}\n")
    return EXIT_OK


def run_bench(args: argparse.Namespace, out: IO[str]) -> int:
    if args.serve:
        return run_load(args, out)
    # what a missing library is brought by: --data reads datasets (train), --references loads PyTorch (export)
    args.extra = ",".join(["bench", *(["train"] if args.data else []), *(["export"] if args.references else [])])
    from guard_sdk.bench import machine, report, run
    from guard_sdk.guard import default_bundle_path

    bundles = args.bundle or [default_bundle_path()]
    configs = run.plan(bundles, backends=args.backends, precisions=args.precisions, lengths=args.tokens,
                       threads=args.threads, batch=args.batch, warmup=args.warmup, runs=args.runs)
    if args.references:
        configs += [c for b in bundles for c in run.plan_references(
            b, args.checkpoint, lengths=args.tokens, threads=args.threads, batch=args.batch, warmup=args.warmup,
            runs=args.runs)]
    rows = None
    if args.data:  # read before the timed runs, so that a wrong path fails at once
        data = training_module("data")
        rows = data.concat([data.load_data(d, root=args.data_dir, split=args.split) for d in args.data])
        rows = rows.select(range(min(args.quality_rows, len(rows))))
    records = run.run(configs, progress=not args.quiet)
    here = machine.machine()
    rated = None
    if rows is not None:
        from guard_sdk.bench.quality import artifact_quality

        rated = [q for b in bundles for q in artifact_quality(b, rows["prompt"], rows["response"], rows["label"],
                                                              progress=not args.quiet)]
    out.write(report.full_markdown(records, here, rated))
    if args.output:
        for path in report.write(records, here, args.output, rated):
            out.write(f"wrote {path}\n")
    failed = sum("error" in r for r in records)
    return EXIT_OK if not failed else EXIT_FAILURE
