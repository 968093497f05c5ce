"""What every command group shares: exit codes, argument types, and the option groups defined once, so a flag
reads the same on every command (``-o/--output``, ``--set``, ``--data-dir``, ``--quiet``, ``--bundle``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import IO, Any

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_UNSAFE = 0, 1, 2, 3

EPILOG = """exit codes: 0 success; 2 bad input (arguments, texts, a bundle that fails its checks, an output
folder that is not one guard-sdk wrote);
1 failure (an export that misses parity, a missing library, anything unexpected);
3 with classify --fail-on-unsafe: some input was judged unsafe.
Set GUARD_SDK_DEBUG=1 to see the traceback of an unexpected error."""

Subparsers = Any  # argparse's _SubParsersAction, which argparse does not export


def probability(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {value}")
    return number


def non_negative_int(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 or more, got {value!r}")
    return int(value)


def positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
    return int(value)


def csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def mapping(value: str) -> dict[str, str]:
    pairs = [part.split("=", 1) for part in csv(value)]
    if not pairs or any(len(p) != 2 or not p[0] or not p[1] for p in pairs):
        raise argparse.ArgumentTypeError(f"expected NAME=COLUMN,..., got {value!r}")
    return {k.strip(): v.strip() for k, v in pairs}


def positive_ints(value: str) -> tuple[int, ...]:
    counts = tuple(positive_int(part) for part in csv(value))
    if not counts:
        raise argparse.ArgumentTypeError("name at least one positive whole number")
    return counts


def bundle_path(value: str) -> Path:
    """A bundle folder, or ``default`` for the embedded default guard."""
    from guard_sdk.guard import DEFAULT_BUNDLE_NAME, default_bundle_path

    if value == DEFAULT_BUNDLE_NAME:
        return default_bundle_path()
    return Path(value)


def command(sub: Subparsers, name: str, help: str, description: str, examples: str = "",
            aliases: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with the exit codes and, where given, examples."""
    epilog = EPILOG + (f"\n\nexamples:\n{examples}" if examples else "")
    return sub.add_parser(name, help=help, description=description, epilog=epilog, aliases=list(aliases),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def add_bundle(p: argparse.ArgumentParser, help: str = "", repeat: bool = False) -> None:
    p.add_argument("--bundle", "-b", type=bundle_path, default=None, action="append" if repeat else "store",
                   help=help or "guard bundle folder, or 'default' for the embedded default guard (a folder named "
                   "default: ./default) (default: default)")


def add_runtime(p: argparse.ArgumentParser, threads: bool = True) -> None:
    """--bundle, --backend, --precision (and --threads): how a bundle is loaded for a command that runs it."""
    add_bundle(p)
    p.add_argument("--backend", default="auto",
                   help="onnxruntime, executorch, coreml (macOS), or auto: the fastest here that the bundle has "
                   "an artifact for (default: auto)")
    p.add_argument("--precision", default="auto",
                   help="fp32, fp16, int8, int4, palette4, or auto: int8, then fp16, then fp32, then any other the "
                   "bundle holds (default: auto)")
    if threads:
        p.add_argument("--threads", type=positive_int, default=None,
                       help="intra-op threads (default: chosen per bundle: 1 for a model under 100M parameters, "
                       "like the embedded guard; else the physical cores, at most 4)")


def add_trusted_keys(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trusted-key", "--key", type=Path, action="append", default=None, metavar="PUBLIC.pem",
                   dest="trusted_keys",
                   help="an Ed25519 public key (PEM) one of which must have signed the bundle (guard-sdk sign); "
                   "repeat for several (default: signatures are not checked)")


OLD_OUTPUT_FLAGS = ("--output-dir", "--out")  # earlier spellings of -o, still taken by every command that writes


def writable(kind: str) -> Callable[[str], Path]:
    """The argparse type of an output path that must become a ``kind`` ("folder" or "file"): refused before any
    work when it exists as the other kind, lies under a file, or under a folder this user cannot write."""

    def parse(value: str) -> Path:
        if not value:
            raise argparse.ArgumentTypeError("an empty path")
        path = Path(value)
        if kind == "folder" and path.exists() and not path.is_dir():
            raise argparse.ArgumentTypeError(f"{path} is a file; give a folder")
        if kind == "file" and path.is_dir():
            raise argparse.ArgumentTypeError(f"{path} is a folder; give a file")
        start = path.absolute() if kind == "folder" or path.exists() else path.absolute().parent
        existing = next(p for p in (start, *start.parents) if p.exists())
        if existing != path.absolute() and not existing.is_dir():
            raise argparse.ArgumentTypeError(f"{existing} is a file, so {path} cannot be written")
        if not os.access(existing, os.W_OK):
            raise argparse.ArgumentTypeError(f"{existing} is not writable")
        return path

    return parse


def add_output(p: argparse.ArgumentParser, help: str, required: bool = False, legacy: tuple[str, ...] = (),
               kind: str = "folder") -> None:
    """-o/--output for what a command writes, a folder or a file (``kind``), checked before any work;
    ``legacy`` keeps a command's own older spelling working too."""
    p.add_argument("--output", "-o", *dict.fromkeys((*OLD_OUTPUT_FLAGS, *legacy)), type=writable(kind),
                   required=required, dest="output", help=help)


def output_override(field: str, output: Path | None) -> list[str]:
    """``-o`` of a command whose output a recipe field names, as the ``--set`` override of that field."""
    return [f"{field}={json.dumps(str(output))}"] if output else []  # a JSON string is a YAML string


def add_recipe(p: argparse.ArgumentParser, help: str = "recipe YAML file", required: bool = True) -> None:
    p.add_argument("--recipe", type=Path, required=required, help=help)


def add_set(p: argparse.ArgumentParser, example: str, records: bool = True) -> None:
    """--set; ``records``: the command's output folder records the recipe as run."""
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help=f"change one recipe field for this run, e.g. --set {example} (repeatable; the value is "
                   f"YAML{'; the output folder records the recipe as run' if records else ''})")


def add_data_dir(p: argparse.ArgumentParser, recipe: bool = True) -> None:
    """--data-dir; ``recipe``: the command's recipe may name the folder (data.data_dir)."""
    p.add_argument("--data-dir", help="the shared data folder for built-in sources (default: "
                   f"{'the recipe data.data_dir, then ' if recipe else ''}$GUARD_DATA_DIR, then ../shared/data)")


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or progress lines; errors only")


# What other libraries log on import that tells a guard-sdk user nothing: torchao's CUDA kernels, which a
# CPU machine cannot load, and a torch deprecation that torchao's import triggers.
QUIET_LOGGERS = ("torchao", "torch.utils._pytree")


def show_progress(verbose: bool = True) -> None:
    """Print guard-sdk's own progress lines (not every library's) to stderr."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("  %(message)s"))
    logger = logging.getLogger("guard_sdk")
    logger.handlers[:] = [handler]
    logger.propagate = False  # a library may have configured the root logger; print each line once
    logger.setLevel(logging.INFO if verbose else logging.WARNING)


def emit(out: IO[str], record: dict[str, Any]) -> None:
    out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()


def training_module(name: str) -> ModuleType:
    """A guard_sdk.training module, imported when its command runs (a missing extra is named by ``main``)."""
    return import_module(f"guard_sdk.training.{name}")
