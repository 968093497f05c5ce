"""guard-sdk classify, verify, keygen and sign: the runtime's commands, which need no extra."""

from __future__ import annotations

import argparse
import re
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
    add_trusted_keys,
    bundle_path,
    command,
    emit,
    probability,
    writable,
)
from guard_sdk.errors import InputError

if TYPE_CHECKING:
    from guard_sdk.guard import Guard

JSONL_CHUNK = 64


def register(sub: Subparsers) -> None:
    c = command(
        sub, "classify",
        help="classify a prompt (or prompt + response) with a guard bundle",
        description="Print one JSON verdict per input: unsafe (bool), score (P(unsafe)), threshold, label, "
        "windows (how many max_length windows were scored), categories (P of each harm category the bundle scores; "
        "{} for a bundle without a category head), violations (the categories over their thresholds that the "
        "policy enforces, most confident first) and view (the view of the text whose window decided: raw as given, "
        "or one the bundle declares: normalized, with look-alike letters, spelled-out words and leetspeak undone; "
        "payload or decoded, with base64, hex, URL-encoding and ROT13 decoded; sentences, each sentence alone). "
        "Either TEXT or --jsonl. With --fail-on-unsafe the exit code says "
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
    add_trusted_keys(c)
    add_quiet(c)
    c.set_defaults(run=run_classify)

    v = command(
        sub, "verify",
        help="check a bundle: manifest, every file's size and sha256, every artifact loaded, its signature",
        description="Check guard.json against the schema and what its values mean, every file it lists against "
        "its recorded size and sha256 (links and non-regular files refused), and with --trusted-key the Ed25519 "
        "signature in guard.sig. Then every artifact that a backend here runs is loaded as Guard.load would load "
        "it (the tokenizer, the model's inputs and outputs against guard.json) and scores one text; an artifact "
        "whose backend is not installed or runs on another platform is named as not run here. Prints a summary "
        "of the artifacts. BUNDLE may be 'default', the embedded default guard.",
        examples="  guard-sdk verify my-guard\n"
        "  guard-sdk verify my-guard --trusted-key release.pub.pem   # exit 2 unless release.pem signed it",
    )
    v.add_argument("bundle", type=bundle_path, help="bundle folder, or 'default'")
    add_trusted_keys(v)
    v.set_defaults(run=run_verify)

    k = command(
        sub, "keygen",
        help="make an Ed25519 key pair for signing bundles",
        description="Write a new Ed25519 key pair as PEM files: PRIVATE (PKCS#8, readable by you only; keep it "
        "secret) and PRIVATE with .pub.pem in place of .pem, the public key apps trust. Never overwrites a file.",
        examples="  guard-sdk keygen release.pem   # writes release.pem and release.pub.pem",
    )
    k.add_argument("private", type=writable("file"), help="where the private key goes (.pem)")
    k.set_defaults(run=run_keygen)

    s = command(
        sub, "sign",
        help="sign a bundle's guard.json with an Ed25519 key",
        description="Sign BUNDLE's guard.json, which holds every file's sha256, and write the signature to "
        "BUNDLE/guard.sig. Apps then load it with Guard.load(..., trusted_keys=[PUBLIC.pem]) or check it with "
        "guard-sdk verify --trusted-key; any change to the bundle breaks the signature.",
        examples="  guard-sdk sign my-guard --key release.pem",
    )
    s.add_argument("bundle", type=Path, help="bundle folder")
    s.add_argument("--key", type=Path, required=True, metavar="PRIVATE.pem", help="the Ed25519 private key")
    s.set_defaults(run=run_sign)


def _jsonl_records(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, the record or an error message) for each non-blank line of a binary stream."""
    from guard_sdk.jsonl import BadLine, jsonl_lines

    for number, record in jsonl_lines(stream):
        if isinstance(record, BadLine):
            yield number, record.error
        elif not isinstance(record, dict) or "prompt" not in record:
            yield number, 'expected an object with a "prompt" (and optionally a "response")'
        else:
            yield number, record


def _for_line(error: InputError) -> str:
    """A batch error as one line's: "prompts[3] has ..." names the chunk's item, the line number says which."""
    return re.sub(r"^(prompt|response)s\[\d+\]", r"\1", str(error))


def _classify_jsonl(guard: Guard, source: Path, args: argparse.Namespace, out: IO[str]) -> tuple[int, int]:
    """Classify every good line of ``source``; (bad lines, unsafe verdicts). A bad line gets its error in its
    place (``classify_batch(errors="return")``) and the rest still run."""
    from tqdm import tqdm

    bad = unsafe = 0
    stream = sys.stdin.buffer if str(source) == "-" else open(source, "rb")

    def error(number: int, message: str) -> None:
        nonlocal bad
        bad += 1
        emit(out, {"line": number, "error": message})
        print(f"guard-sdk: line {number}: {message}", file=sys.stderr)

    try:
        pending: list[tuple[int, dict[str, Any]]] = []
        progress = tqdm(unit=" lines", file=sys.stderr, disable=True if args.quiet else None)

        def flush() -> None:
            nonlocal unsafe
            verdicts = guard.classify_batch([r["prompt"] for _, r in pending],
                                            [r.get("response") for _, r in pending], threshold=args.threshold,
                                            errors="return")
            for (number, _), verdict in zip(pending, verdicts):
                if isinstance(verdict, InputError):
                    error(number, _for_line(verdict))
                    continue
                emit(out, {"line": number, **verdict.to_dict()})
                unsafe += verdict.unsafe
            progress.update(len(pending))
            pending.clear()

        for number, record in _jsonl_records(stream):
            if isinstance(record, str):
                flush()
                error(number, record)
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
        raise InputError(f"{args.jsonl}: {'a folder, not a file' if args.jsonl.is_dir() else 'no such file'}")
    guard = Guard.load(args.bundle, backend=args.backend, precision=args.precision, threads=args.threads,
                       policy=args.policy, trusted_keys=args.trusted_keys)
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
    from guard_sdk.bundle import read_manifest, read_manifest_bytes
    from guard_sdk.guard import check_bundle

    signer = None
    if args.trusted_keys:
        from guard_sdk.signing import check_signature

        signer = check_signature(args.bundle, read_manifest_bytes(args.bundle), args.trusted_keys)
    outcomes = check_bundle(args.bundle)
    manifest = read_manifest(args.bundle)
    signed = f", signed by trusted key {signer}" if signer else ""
    out.write(f"{args.bundle}: {manifest.name}, schema {manifest.schema_version}, all files match guard.json"
              f"{signed}\n")
    for a in manifest.artifacts:
        out.write(f"  {a.path}  {a.format} {a.precision}  {a.bytes:,} bytes  sha256 {a.sha256[:12]}  "
                  f"{outcomes[a.path]}\n")
    views = ", ".join(manifest.views.names) if manifest.views is not None else "none"
    categories = ", ".join(c.name for c in manifest.categories) or "none"
    out.write(f"  threshold {manifest.threshold:.4g}, views {views}, categories {categories}\n")
    return EXIT_OK


def run_keygen(args: argparse.Namespace, out: IO[str]) -> int:
    from guard_sdk.signing import generate_keys

    public = public_key_path(args.private)
    out.write(f"key {generate_keys(args.private, public)}: private {args.private} (keep it secret), "
              f"public {public}\n")
    return EXIT_OK


def public_key_path(private: Path) -> Path:
    """release.pem -> release.pub.pem"""
    return private.with_name(f"{private.stem if private.suffix == '.pem' else private.name}.pub.pem")


def run_sign(args: argparse.Namespace, out: IO[str]) -> int:
    from guard_sdk.signing import sign_bundle

    out.write(f"{sign_bundle(args.bundle, args.key)}: written\n")
    return EXIT_OK
