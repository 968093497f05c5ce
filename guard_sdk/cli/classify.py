"""guard-sdk classify and verify: the runtime's commands, which need no extra."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from guard_sdk.cli.options import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_UNSAFE,
    Subparsers,
    add_quiet,
    add_runtime,
    bundle_path,
    command,
    emit,
    probability,
)
from guard_sdk.errors import InputError, InputTypeError

if TYPE_CHECKING:
    from guard_sdk.guard import Guard

JSONL_CHUNK = 64


def register(sub: Subparsers) -> None:
    c = command(
        sub, "classify",
        help="classify a prompt (or prompt + response) with a guard bundle",
        description="Print one JSON verdict per input: unsafe (bool), score (P(unsafe)), threshold, label, "
        "windows (how many max_length windows were scored), categories (P of each harm category the bundle scores; "
        "{} for a bundle without a category head) and violations (the categories over their thresholds that the "
        "policy enforces, most confident first). Either TEXT or --jsonl. With --fail-on-unsafe the exit code says "
        "whether anything was unsafe (3), so a shell script can gate on it.",
        examples="  guard-sdk classify 'How do I make a pipe bomb?' --bundle my-guard\n"
        "  guard-sdk classify 'Tell me a joke' --response 'Why did the ...' --bundle my-guard\n"
        "  guard-sdk classify --jsonl inputs.jsonl --bundle my-guard > verdicts.jsonl\n"
        "  guard-sdk classify 'Write a sex scene' --policy allow-adult.json   # docs/policy.md\n"
        "  guard-sdk classify --fail-on-unsafe \"$PROMPT\" -q >/dev/null; [ $? -eq 3 ] && echo blocked",
    )
    c.add_argument("text", nargs="?", help="the user prompt to classify")
    c.add_argument("--response", "-r", help="the assistant's response to TEXT; the verdict is then on the response")
    c.add_argument("--jsonl", type=Path, metavar="FILE",
                   help='one {"prompt": ..., "response": ...} object per line ("-" reads stdin); one verdict '
                   'per line out, in order, with its line number; a bad line gets {"line": N, "error": ...} '
                   "and the rest still run")
    c.add_argument("--threshold", "-t", type=probability, default=None,
                   help="decision cut on P(unsafe) (default: the bundle's)")
    c.add_argument("--policy", type=Path, metavar="FILE", default=None,
                   help="a policy file (JSON): which harm categories to enforce or allow, and thresholds of their "
                   "own (docs/policy.md; default: none, P(unsafe) alone decides)")
    c.add_argument("--fail-on-unsafe", action="store_true",
                   help="exit with 3 when any input is judged unsafe (bad input still exits 2 first)")
    add_runtime(c)
    add_quiet(c)
    c.set_defaults(run=run_classify)

    v = command(
        sub, "verify",
        help="check a bundle: manifest schema, every file's size and sha256",
        description="Check guard.json against the schema and every file it lists against its recorded size and "
        "sha256; print a summary of the artifacts. BUNDLE may be 'default', the embedded default guard.",
    )
    v.add_argument("bundle", type=bundle_path, help="bundle folder, or 'default'")
    v.set_defaults(run=run_verify)


def _jsonl_records(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, the record or an error message) for each non-blank line of a binary stream."""
    from guard_sdk.guard import MAX_INPUT_CHARS, check_text
    from guard_sdk.jsonl import BadLine, jsonl_lines

    for number, record in jsonl_lines(stream):
        if isinstance(record, BadLine):
            yield number, record.error
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


def _classify_jsonl(guard: Guard, source: Path, args: argparse.Namespace, out: IO[str]) -> tuple[int, int]:
    """Classify every good line of ``source``; (bad lines, unsafe verdicts)."""
    from tqdm import tqdm

    bad = unsafe = 0
    stream = sys.stdin.buffer if str(source) == "-" else open(source, "rb")
    try:
        pending: list[tuple[int, dict[str, Any]]] = []
        progress = tqdm(unit=" lines", file=sys.stderr, disable=True if args.quiet else None)

        def flush() -> None:
            nonlocal unsafe
            verdicts = guard.classify_batch([r["prompt"] for _, r in pending],
                                            [r.get("response") for _, r in pending], threshold=args.threshold)
            for (number, _), verdict in zip(pending, verdicts):
                emit(out, {"line": number, **verdict.to_dict()})
                unsafe += verdict.unsafe
            progress.update(len(pending))
            pending.clear()

        for number, record in _jsonl_records(stream):
            if isinstance(record, str):
                flush()
                bad += 1
                emit(out, {"line": number, "error": record})
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
    return bad, unsafe


def run_classify(args: argparse.Namespace, out: IO[str]) -> int:
    from guard_sdk.guard import Guard

    if (args.text is None) == (args.jsonl is None):
        raise InputError("give either TEXT or --jsonl FILE (see guard-sdk classify --help)")
    if args.jsonl is not None and args.response is not None:
        raise InputError("--response goes with TEXT; in --jsonl put a \"response\" field on each line")
    if args.jsonl is not None and str(args.jsonl) != "-" and not args.jsonl.is_file():
        raise InputError(f"{args.jsonl}: no such file")
    guard = Guard.load(args.bundle, backend=args.backend, precision=args.precision, threads=args.threads,
                       policy=args.policy)
    if args.jsonl is not None:
        bad, unsafe = _classify_jsonl(guard, args.jsonl, args, out)
    else:
        verdict = guard.classify(args.text, args.response, threshold=args.threshold)
        emit(out, verdict.to_dict())
        bad, unsafe = 0, int(verdict.unsafe)
    if bad:
        return EXIT_BAD_INPUT
    return EXIT_UNSAFE if args.fail_on_unsafe and unsafe else EXIT_OK


def run_verify(args: argparse.Namespace, out: IO[str]) -> int:
    from guard_sdk.bundle import verify_bundle

    manifest = verify_bundle(args.bundle)
    out.write(f"{args.bundle}: {manifest.name}, schema {manifest.schema_version}, all files match guard.json\n")
    for a in manifest.artifacts:
        out.write(f"  {a.path}  {a.format} {a.precision}  {a.bytes:,} bytes  sha256 {a.sha256[:12]}\n")
    return EXIT_OK
