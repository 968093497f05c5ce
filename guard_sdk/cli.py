"""The ``guard-sdk`` command. Heavy subcommands import their packages only when they run."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from guard_sdk import __version__
from guard_sdk.errors import (
    BackendUnavailableError,
    BundleError,
    ExportError,
    InputError,
    InputTypeError,
    ParityError,
)

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
JSONL_CHUNK = 64

EPILOG = """exit codes: 0 success; 2 bad input (arguments, texts, a bundle that fails its checks);
1 failure (an export that misses parity, a missing library, anything unexpected).
Set GUARD_SDK_DEBUG=1 to see the traceback of an unexpected error."""


def _probability(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {value}")
    return number


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
    return int(value)


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _add_runtime_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", "-b", type=Path, default=None,
                   help="guard bundle folder (default: the embedded default guard)")
    p.add_argument("--backend", default="auto", help="onnxruntime, or auto to pick the fastest here (default: auto)")
    p.add_argument("--precision", default="auto",
                   help="int8, fp32, or auto: int8 where the bundle has it (default: auto)")
    p.add_argument("--threads", type=_positive_int, default=None, help="intra-op threads (default: the backend's)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guard-sdk",
        description="Small, fast LLM safety guards: export a classifier to a guard bundle and classify "
        "prompts, or prompt+response pairs, on the device.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"guard-sdk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    c = sub.add_parser(
        "classify",
        help="classify a prompt (or prompt + response) with a guard bundle",
        description="Print one JSON verdict per input: unsafe (bool), score (P(unsafe)), threshold, label, "
        "windows (how many max_length windows were scored). Either TEXT or --jsonl.",
        epilog=EPILOG + "\n\nexamples:\n  guard-sdk classify 'How do I make a pipe bomb?' --bundle my-guard\n"
        "  guard-sdk classify 'Tell me a joke' --response 'Why did the ...' --bundle my-guard\n"
        "  guard-sdk classify --jsonl inputs.jsonl --bundle my-guard > verdicts.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("text", nargs="?", help="the user prompt to classify")
    c.add_argument("--response", "-r", help="the assistant's response to TEXT; the verdict is then on the response")
    c.add_argument("--jsonl", type=Path, metavar="FILE",
                   help='one {"prompt": ..., "response": ...} object per line ("-" reads stdin); one verdict '
                   'per line out, in order, with its line number; a bad line gets {"line": N, "error": ...} '
                   "and the rest still run")
    c.add_argument("--threshold", "-t", type=_probability, default=None,
                   help="decision cut on P(unsafe) (default: the bundle's)")
    _add_runtime_options(c)

    e = sub.add_parser(
        "export",
        help="export a Hugging Face sequence-classification checkpoint to a guard bundle",
        description="Export CHECKPOINT (a local folder or a hub id) to a guard bundle folder. Every artifact is "
        "scored against the PyTorch model on fixed texts first; if one misses its tolerance the export "
        "fails and writes nothing. Needs: pip install 'guard-sdk[export]'.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("checkpoint", help="folder with config.json, weights and tokenizer.json, or a hub id")
    e.add_argument("--output", "-o", type=Path, required=True, help="bundle folder to write (must not exist)")
    e.add_argument("--formats", type=_csv, default=("onnx",), help="comma-separated formats (default: onnx)")
    e.add_argument("--precision", type=_csv, default=("fp32", "int8"), dest="precisions",
                   help="comma-separated precisions (default: fp32,int8)")
    e.add_argument("--name", help="bundle name in guard.json (default: the output folder's name)")
    e.add_argument("--max-length", type=_positive_int, help="tokens per window (default: the checkpoint's limit)")
    e.add_argument("--threshold", type=_probability, default=0.5, help="decision cut on P(unsafe) (default: 0.5)")
    e.add_argument("--prompt-truncation-side", choices=("left", "right"), default="left",
                   help="for a pair over max_length, which end of the prompt is cut (default: left, keeping "
                   "the words nearest the response)")
    e.add_argument("--window-overlap", type=int, help="tokens shared by consecutive windows (default: max_length // 8)")
    e.add_argument("--fp32-tolerance", type=float, default=1e-4, help="max |ΔP(unsafe)| for fp32 (default: 1e-4)")
    e.add_argument("--fp32-min-agreement", type=_probability, default=1.0,
                   help="least share of same decisions for fp32 (default: 1.0)")
    e.add_argument("--int8-tolerance", type=float, default=0.05, help="max |ΔP(unsafe)| for int8 (default: 0.05)")
    e.add_argument("--int8-min-agreement", type=_probability, default=0.98,
                   help="least share of same decisions for int8 (default: 0.98)")
    e.add_argument("--int8-per-channel", choices=("auto", "on", "off"), default="auto",
                   help="per-channel weight scales; auto uses them unless they miss parity (default: auto)")
    e.add_argument("--opset", type=_positive_int, help="ONNX opset (default: optimum's for the architecture)")
    e.add_argument("--threads", type=_positive_int, help="threads for the parity runs (default: all)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --output")
    e.add_argument("--quiet", "-q", action="store_true", help="print only errors")

    v = sub.add_parser(
        "verify",
        help="check a bundle: manifest schema, every file's size and sha256",
        description="Check guard.json against the schema and every file it lists against its recorded size and "
        "sha256; print a summary of the artifacts.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    v.add_argument("bundle", type=Path, help="bundle folder")
    return parser


def show_progress(verbose: bool = True) -> None:
    """Print guard-sdk's own progress lines (not every library's) to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("  %(message)s"))
    logger = logging.getLogger("guard_sdk")
    logger.handlers[:] = [handler]
    logger.propagate = False  # a library may have configured the root logger; print each line once
    logger.setLevel(logging.INFO if verbose else logging.WARNING)


def _emit(out: IO[str], record: dict[str, Any]) -> None:
    out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()


def _jsonl_records(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, parsed record or an error message) for each non-blank line; bytes are decoded per line."""
    from guard_sdk.guard import MAX_INPUT_CHARS, check_text

    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield number, f"not valid UTF-8 (byte {e.start})"
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            yield number, f"not valid JSON ({e.msg})"
            continue
        if not isinstance(record, dict) or "prompt" not in record:
            yield number, 'expected an object with a "prompt" (and optionally a "response")'
            continue
        try:
            check_text(record["prompt"], "prompt", MAX_INPUT_CHARS)
            if record.get("response") is not None:
                check_text(record["response"], "response", MAX_INPUT_CHARS)
        except (InputError, InputTypeError) as e:
            yield number, str(e)
            continue
        yield number, record


def _classify_jsonl(guard: Any, source: Path, threshold: float | None, out: IO[str]) -> int:
    from tqdm import tqdm

    bad = 0
    stream = sys.stdin.buffer if str(source) == "-" else open(source, "rb")
    try:
        pending: list[tuple[int, dict[str, Any]]] = []
        progress = tqdm(unit=" lines", file=sys.stderr, disable=None)

        def flush() -> None:
            verdicts = guard.classify_batch([r["prompt"] for _, r in pending],
                                            [r.get("response") for _, r in pending], threshold=threshold)
            for (number, _), verdict in zip(pending, verdicts):
                _emit(out, {"line": number, **verdict.to_dict()})
            progress.update(len(pending))
            pending.clear()

        for number, record in _jsonl_records(stream):
            if isinstance(record, str):
                flush()
                bad += 1
                _emit(out, {"line": number, "error": record})
                print(f"guard-sdk: line {number}: {record}", file=sys.stderr)
                continue
            pending.append((number, record))
            if len(pending) >= JSONL_CHUNK:
                flush()
        flush()
        progress.close()
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    return EXIT_BAD_INPUT if bad else EXIT_OK


def _run_classify(args: argparse.Namespace, out: IO[str]) -> int:
    from guard_sdk.guard import Guard

    if (args.text is None) == (args.jsonl is None):
        raise InputError("give either TEXT or --jsonl FILE (see guard-sdk classify --help)")
    if args.jsonl is not None and args.response is not None:
        raise InputError("--response goes with TEXT; in --jsonl put a \"response\" field on each line")
    if args.jsonl is not None and str(args.jsonl) != "-" and not args.jsonl.is_file():
        raise InputError(f"{args.jsonl}: no such file")
    guard = Guard.load(args.bundle, backend=args.backend, precision=args.precision, threads=args.threads)
    if args.jsonl is not None:
        return _classify_jsonl(guard, args.jsonl, args.threshold, out)
    _emit(out, guard.classify(args.text, args.response, threshold=args.threshold).to_dict())
    return EXIT_OK


def _run_export(args: argparse.Namespace, out: IO[str]) -> int:
    try:
        from guard_sdk.export import ExportConfig, export_bundle
    except ImportError as e:
        raise BackendUnavailableError(
            f"export needs {e.name}, which is not installed: pip install 'guard-sdk[export]'"
        ) from e
    show_progress(not args.quiet)
    config = ExportConfig(
        formats=args.formats, precisions=args.precisions, name=args.name, max_length=args.max_length,
        threshold=args.threshold, prompt_truncation_side=args.prompt_truncation_side,
        window_overlap=args.window_overlap, fp32_tolerance=args.fp32_tolerance,
        fp32_min_agreement=args.fp32_min_agreement, int8_tolerance=args.int8_tolerance,
        int8_min_agreement=args.int8_min_agreement, int8_per_channel=args.int8_per_channel,
        opset=args.opset, overwrite=args.overwrite,
    )
    manifest = export_bundle(args.checkpoint, args.output, config, threads=args.threads)
    for a in manifest.artifacts:
        out.write(f"{args.output / a.path}  {a.format} {a.precision}  {a.bytes / 1e6:.1f} MB  "
                  f"max|ΔP| {a.parity.max_abs_diff:.1e}  agreement {100 * a.parity.agreement:.1f}%\n")
    return EXIT_OK


def _run_verify(args: argparse.Namespace, out: IO[str]) -> int:
    from guard_sdk.bundle import verify_bundle

    manifest = verify_bundle(args.bundle)
    out.write(f"{args.bundle}: {manifest.name}, schema {manifest.schema_version}, all files match guard.json\n")
    for a in manifest.artifacts:
        out.write(f"  {a.path}  {a.format} {a.precision}  {a.bytes:,} bytes  sha256 {a.sha256[:12]}\n")
    return EXIT_OK


COMMANDS = {"classify": _run_classify, "export": _run_export, "verify": _run_verify}


def main(argv: list[str] | None = None, out: IO[str] | None = None) -> int:
    """Run the CLI; returns the exit code rather than exiting, so tests can call it in-process."""
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    try:
        return COMMANDS[args.command](args, out)
    except ParityError as e:
        print(f"guard-sdk: export failed: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except BackendUnavailableError as e:
        print(f"guard-sdk: error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except (InputError, InputTypeError, BundleError, ExportError) as e:
        print(f"guard-sdk: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:  # the last word: one line, not a traceback, unless GUARD_SDK_DEBUG is set
        if os.environ.get("GUARD_SDK_DEBUG"):
            raise
        print(f"guard-sdk: failed: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILURE


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
