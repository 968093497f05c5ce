"""The parser assembled from the command groups, and ``main``: one place that turns errors into exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO

from guard_sdk import __version__
from guard_sdk.cli import adapt, android, augment, bench, classify, data, evaluate, export, serve, train
from guard_sdk.cli.options import EPILOG, EXIT_BAD_INPUT, EXIT_FAILURE
from guard_sdk.errors import (
    BackendUnavailableError,
    BundleError,
    ExportError,
    InputError,
    InputTypeError,
    ParityError,
)

GROUPS = (classify, serve, export, data, train, augment, adapt, evaluate, bench, android)


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
    for group in GROUPS:
        group.register(sub)
    return parser


def _missing_extra(e: ImportError, args: argparse.Namespace) -> str | None:
    """What to install for a library that a command's extra brings; None when the import error is our own bug."""
    missing = (e.name or "").partition(".")[0]
    if not missing or missing == "guard_sdk":
        return None
    extra = getattr(args, "extra", None)
    install = f"pip install 'guard-sdk[{extra}]'" if extra else "reinstall guard-sdk"
    return f"guard-sdk {args.command} needs {missing}, which is not installed: {install}"


def main(argv: list[str] | None = None, out: IO[str] | None = None) -> int:
    """Run the CLI; returns the exit code rather than exiting, so tests can call it in-process."""
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    try:
        return int(args.run(args, out))
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
        message = _missing_extra(e, args) if isinstance(e, ImportError) else None
        if message is not None:
            print(f"guard-sdk: error: {message}", file=sys.stderr)
            return EXIT_FAILURE
        if os.environ.get("GUARD_SDK_DEBUG"):
            raise
        print(f"guard-sdk: failed: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILURE


def entry_point() -> None:
    sys.exit(main())
