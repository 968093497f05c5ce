"""guard-sdk android vectors|assets|report: the Android demo's side of a bundle."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import IO

from guard_sdk.cli.options import EXIT_OK, Subparsers, add_bundle, add_output, add_runtime, command


def register(sub: Subparsers) -> None:
    an = command(
        sub, "android",
        help="the Android demo's side of a bundle: test vectors, the app's assets, the app's benchmark report",
        description="Tasks for android_demo/ (its README says how to build and run the app): write the shared "
        "test vectors its JVM tests match, copy a bundle into the app's assets, or turn the JSON the app's "
        "benchmark screen wrote into bench's report format.",
        examples="  make android-assets                              # the default guard's .pte, into the app\n"
        "  guard-sdk android assets -b my-guard             # any bundle with model.int8.pte\n"
        "  guard-sdk android vectors -o build/android-vectors/default.json\n"
        "  guard-sdk android report pulled/ -o benchmarks/android/",
    )
    an.set_defaults(run=run_android)
    tasks = an.add_subparsers(dest="android_command", metavar="TASK", required=True)
    v = command(tasks, "vectors", help="write test vectors: texts, token ids, windows, masks, logits, verdicts",
                description="Run fixed texts (ASCII, accents, CJK, emoji, empty, over max_length, controls, "
                "prompt+response pairs) through the Python runtime and write, for each, its token ids, windows "
                "(ids, types, attention mask), the padded batch, each window's logits from the bundle's artifact, "
                "P(unsafe) per window and the verdict. The JVM module's tests must match ids and masks exactly.")
    add_runtime(v, threads=False)
    add_output(v, "JSON file to write", required=True, kind="file")
    a = command(tasks, "assets", help="copy a bundle's guard.json, tokenizer.json and .pte into the app's assets",
                description="Check guard.json, tokenizer.json and the ExecuTorch artifact against their sha256, "
                "then copy them into the app's assets folder, replacing the bundle copied there before. A folder "
                "that holds anything else is refused.")
    add_bundle(a, "guard bundle folder with an ExecuTorch artifact (default: the embedded default guard, which is "
               "ONNX only: make android-assets exports its .pte)")
    a.add_argument("--precision", default="int8", help="which ExecuTorch artifact: fp32, int8, int4 (default: int8)")
    add_output(a, "assets folder (default: android_demo/app/src/main/assets/guard of this checkout)",
               legacy=("--assets",))
    r = command(tasks, "report", help="the app's benchmark JSON as bench's results.json and RESULTS.md",
                description="Read benchmark_results.json (ExecuTorch benchmark-app fields) and guard_run.json "
                "(the timed calls) that the app's benchmark screen wrote and benchmarks/android_bench.sh pulled, "
                "and print or write them in the same report format as guard-sdk bench.")
    r.add_argument("pulled", type=Path, help="folder holding the two JSON files pulled from the phone")
    add_output(r, "also write results.json and RESULTS.md here")


def run_android(args: argparse.Namespace, out: IO[str]) -> int:
    from guard_sdk import android
    from guard_sdk.guard import default_bundle_path

    if args.android_command == "vectors":
        path = android.write_vectors(args.bundle or default_bundle_path(), args.output, args.backend, args.precision)
        out.write(f"wrote {path}\n")
    elif args.android_command == "assets":
        assets = args.output or android.default_assets()
        for path in android.copy_assets(args.bundle or default_bundle_path(), assets, args.precision):
            out.write(f"copied {path}\n")
    else:
        from guard_sdk.bench import report

        results, run = android.read_pulled(args.pulled)
        records, device = android.records_from_app(results, run), android.device_machine(results)
        out.write(report.full_markdown(records, device, None))
        if args.output:
            for path in report.write(records, device, args.output, None):
                out.write(f"wrote {path}\n")
    return EXIT_OK
