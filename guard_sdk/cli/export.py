"""guard-sdk export and random-checkpoint: a checkpoint into a guard bundle (needs the export extra)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import IO

from guard_sdk.cli.options import (
    EXIT_OK,
    Subparsers,
    add_output,
    add_quiet,
    command,
    csv,
    non_negative_int,
    positive_int,
    probability,
    show_progress,
)
from guard_sdk.errors import InputError
from guard_sdk.views import EXPORT_VIEWS


def register(sub: Subparsers) -> None:
    e = command(
        sub, "export",
        help="export a Hugging Face sequence-classification checkpoint to a guard bundle",
        description="Export CHECKPOINT (a local folder or a hub id) to a guard bundle folder. Every artifact is "
        "scored against the PyTorch model on fixed texts first, and on the rows of --parity-data where given; if "
        "one misses its tolerance the export fails and writes nothing. Core ML predicts only on macOS: exported "
        "elsewhere, its artifacts are checked by their spec and guard.json says parity was not measured. Formats "
        "and bounds: docs/export.md. "
        "Needs: pip install 'guard-sdk[export]'.",
        examples="  guard-sdk export ckpt -o my-guard                         # ONNX fp32 + int8\n"
        "  guard-sdk export ckpt -o my-guard --formats onnx,executorch,coreml  # + .pte, .mlpackage\n"
        "  guard-sdk export ckpt -o phone --formats executorch --precision int8,int4\n"
        "  guard-sdk export ckpt -o my-guard --parity-data dev.jsonl     # parity on up to 500 labelled rows too",
    )
    e.add_argument("checkpoint", help="folder with config.json, weights and tokenizer.json, or a hub id")
    add_output(e, "bundle folder to write: new, empty, or (with --overwrite) an existing guard bundle; never the "
               "checkpoint or a folder holding it", required=True)
    e.add_argument("--formats", type=csv, default=("onnx",),
                   help="comma-separated: onnx, executorch (.pte, XNNPACK), coreml (.mlpackage) (default: onnx)")
    e.add_argument("--precision", type=csv, default=None, dest="precisions",
                   help="comma-separated; each format writes those it has: onnx fp32,int8; executorch "
                   "fp32,int8,int4 (4-bit weights); coreml fp16,int8,palette4 (4-bit palettized weights). "
                   "Default: onnx and executorch fp32,int8; coreml fp16,int8")
    e.add_argument("--name", help="bundle name in guard.json (default: the output folder's name)")
    e.add_argument("--max-length", type=positive_int, help="tokens per window (default: the checkpoint's limit)")
    e.add_argument("--threshold", type=probability, default=None,
                   help="decision cut on P(unsafe) (default: the one `guard-sdk finetune` calibrated, else 0.5)")
    e.add_argument("--prompt-truncation-side", choices=("left", "right"), default="left",
                   help="for a pair over max_length, which end of the prompt is cut (default: left, keeping "
                   "the words nearest the response)")
    e.add_argument("--window-overlap", type=non_negative_int,
                   help="tokens shared by consecutive windows (default: max_length // 8)")
    e.add_argument("--fp32-tolerance", type=probability, default=1e-4, help="max |ΔP(unsafe)| for fp32 (default: 1e-4)")
    e.add_argument("--fp32-min-agreement", type=probability, default=1.0,
                   help="least share of same decisions for fp32 (default: 1.0)")
    e.add_argument("--unsafe-label", metavar="NAME|INDEX",
                   help="which label is unsafe: a name of the checkpoint's config.id2label, or 0 or 1 (default: "
                   "read from the label names, e.g. unsafe, harmful; transformers' LABEL_0/LABEL_1 mean index 1)")
    e.add_argument("--allow-untrained-head", action="store_true",
                   help="export even where the checkpoint's files lack weights (a bare encoder has no trained "
                   "classification head, and its guard scores every input near 0.5); e.g. to measure size and speed")
    e.add_argument("--parity-data", type=Path, metavar="FILE",
                   help="labelled rows to check parity on beside the fixed texts: .jsonl (prompt, optional response "
                   "and label) or .csv with those columns; guard.json records the reference's and each artifact's "
                   "accuracy and F1 on them")
    e.add_argument("--parity-rows", type=positive_int, default=500,
                   help="at most this many rows of --parity-data, drawn with a fixed seed (default: 500)")
    e.add_argument("--int8-tolerance", type=probability, default=0.05, help="max |ΔP(unsafe)| for int8 (default: 0.05)")
    e.add_argument("--int8-min-agreement", type=probability, default=0.98,
                   help="least share of same decisions for int8 (default: 0.98)")
    e.add_argument("--int8-per-channel", choices=("auto", "on", "off"), default="auto",
                   help="ONNX: per-channel weight scales; auto uses them unless they miss parity (default: auto)")
    e.add_argument("--fp16-tolerance", type=probability, default=0.01, help="max |ΔP(unsafe)| for fp16 (default: 0.01)")
    e.add_argument("--fp16-min-agreement", type=probability, default=0.99,
                   help="least share of same decisions for fp16 (default: 0.99)")
    e.add_argument("--int4-tolerance", type=probability, default=0.25,
                   help="max |ΔP(unsafe)| for int4 and palette4 (default: 0.25)")
    e.add_argument("--int4-min-agreement", type=probability, default=0.95,
                   help="least share of same decisions for int4 and palette4 (default: 0.95)")
    e.add_argument("--no-quantize-embeddings", dest="quantize_embeddings", action="store_false",
                   help="ExecuTorch int8/int4: keep the embedding table in fp32 (default: int8 rows)")
    e.add_argument("--opset", type=positive_int, help="ONNX opset (default: optimum's for the architecture)")
    e.add_argument("--threads", type=positive_int, help="threads for the parity runs (default: all)")
    e.add_argument("--views", type=csv, default=EXPORT_VIEWS, metavar="NAMES",
                   help="the text views the bundle scores beside the text as written (docs/evasion.md): normalized "
                   "(look-alike letters, spaced-out words, leetspeak, zero-width characters undone), payload (what "
                   "base64, hex, percent-encoding and ROT13 decode to), decoded (the older view: decoded with its "
                   "wrapper), sentences (each sentence of a prompt alone, or for a pair beside the response) "
                   f"(default: {','.join(EXPORT_VIEWS)})")
    e.add_argument("--no-views", dest="views", action="store_const", const=(),
                   help="score the text as written only: declare no view")
    e.add_argument("--overwrite", action="store_true",
                   help="replace the guard bundle at --output (a folder that holds guard.json; any other "
                   "non-empty folder is refused)")
    add_quiet(e)
    e.set_defaults(run=run_export, extra="export")

    d = command(
        sub, "views",
        help="declare which text views an existing bundle scores, without exporting it again",
        description="Rewrite BUNDLE's guard.json so that it scores NAMES beside the text as written (docs/evasion.md):"
        " normalized (look-alike letters, zero-width characters, spelled-out words and leetspeak undone), payload "
        "(what base64, hex, percent-encoding and ROT13 decode to), decoded (the older view: the decoded text with its "
        "wrapper) and sentences (each sentence of a prompt alone, or for a pair beside the response); and turn "
        "prompt windows on, as export does (a pair whose prompt is cut also reads each window of the prompt, so a "
        "request before a page of padding and an answer is still read). The model file and its hashes are unchanged "
        "and the threshold is kept; the bundle is verified first, and a signature (guard.sig) is removed, since it "
        "was over the old guard.json: sign the bundle again. Needs: pip install 'guard-sdk[export]'.",
        examples="  guard-sdk views my-guard normalized,payload\n"
        "  guard-sdk eval --suite evasion --bundle my-guard   # what they change",
    )
    d.add_argument("bundle", type=Path, help="bundle folder")
    d.add_argument("names", type=csv, help="comma-separated view names (normalized,payload,decoded,sentences)")
    d.set_defaults(run=run_views, extra="export")

    r = command(
        sub, "random-checkpoint",
        help="write a random-weight checkpoint of a real model shape, to export or benchmark offline",
        description="Write a sequence-classification checkpoint with the published config of SHAPE and random "
        "weights (size and speed do not depend on the weights), with a small Unigram tokenizer. Needs: pip "
        "install 'guard-sdk[export]'.",
        examples="  guard-sdk random-checkpoint deberta-v3-large -o build/deberta-v3-large-random\n"
        "  guard-sdk export build/deberta-v3-large-random -o build/student-shape --formats onnx,executorch,coreml",
    )
    r.add_argument("shape", choices=("deberta-v3-large", "deberta-v3-base"),
                   help="deberta-v3-large is the HarmAug paper's 435M student")
    add_output(r, "checkpoint folder to write (must not exist)", required=True)
    r.add_argument("--seed", type=int, default=0, help="random seed of the weights (default: 0)")
    r.set_defaults(run=run_random_checkpoint, extra="export")


def run_export(args: argparse.Namespace, out: IO[str]) -> int:
    from guard_sdk.export import ExportConfig, export_bundle
    from guard_sdk.export.parity import read_parity_data

    show_progress(not args.quiet)
    parity_data = read_parity_data(args.parity_data) if args.parity_data else ()
    config = ExportConfig(
        formats=args.formats, precisions=args.precisions, name=args.name, max_length=args.max_length,
        threshold=args.threshold, prompt_truncation_side=args.prompt_truncation_side,
        window_overlap=args.window_overlap, views=args.views, fp32_tolerance=args.fp32_tolerance,
        fp32_min_agreement=args.fp32_min_agreement, int8_tolerance=args.int8_tolerance,
        int8_min_agreement=args.int8_min_agreement, int8_per_channel=args.int8_per_channel,
        fp16_tolerance=args.fp16_tolerance, fp16_min_agreement=args.fp16_min_agreement,
        int4_tolerance=args.int4_tolerance, int4_min_agreement=args.int4_min_agreement,
        quantize_embeddings=args.quantize_embeddings, opset=args.opset, overwrite=args.overwrite,
        unsafe_label=args.unsafe_label, allow_untrained_head=args.allow_untrained_head, parity_data=parity_data,
        parity_rows=args.parity_rows,
    )
    manifest = export_bundle(args.checkpoint, args.output, config, threads=args.threads)
    for a in manifest.artifacts:
        p = a.parity
        parity = (f"max|ΔP| {p.figures()[0]:.1e}  agreement {100 * p.figures()[1]:.1f}% of {p.counted_windows} "
                  f"decisive windows" if p.measured
                  else "parity not measured (Core ML predicts on macOS only); spec checked")
        out.write(f"{args.output / a.path}  {a.format} {a.precision}  {a.bytes / 1e6:.1f} MB  {parity}\n")
    return EXIT_OK


def run_views(args: argparse.Namespace, out: IO[str]) -> int:
    from guard_sdk.export.declare_views import declare_views

    unsigned = declare_views(args.bundle, tuple(args.names))
    out.write(f"{args.bundle}: scores {', '.join(['the text as written', *args.names])}"
              + ("; guard.sig removed: sign the bundle again\n" if unsigned else "\n"))
    return EXIT_OK


def run_random_checkpoint(args: argparse.Namespace, out: IO[str]) -> int:
    from guard_sdk.export.shapes import write_random_checkpoint

    if args.output.exists():
        raise InputError(f"{args.output} already exists; choose another path")
    write_random_checkpoint(args.shape, args.output, args.seed)
    out.write(f"{args.output}\n")
    return EXIT_OK
