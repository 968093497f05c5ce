"""The guard bundle: guard.json read, validated and written in one place, and every file checked before use.

The bundle is the one contract between export, the runtime, the benchmarks and the Android demo
(docs/bundle.md). The JSON Schema in guard.schema.json is the source of truth for its shape; this module
adds what a schema cannot say (paths stay inside the bundle, files match their recorded hashes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from guard_sdk.bundle_files import read_bundle_file
from guard_sdk.errors import (
    ArtifactChangedError,
    ArtifactMissingError,
    BundleError,
    ManifestError,
    SchemaVersionError,
)
from guard_sdk.labels import label_value

SCHEMA_VERSION = 3  # what export writes: version 2 and text views
READ_VERSIONS = (1, 2, 3)  # version 1: a bundle without categories; 2: without views
MANIFEST_NAME = "guard.json"
TOKENIZER_NAME = "tokenizer.json"
MAX_MANIFEST_BYTES = 4 << 20  # a guard.json is a few kB; a larger one is refused before it is read
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileEntry:
    """A file of the bundle, by path relative to the bundle folder, with its size and sha256."""

    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Parity:
    """How an artifact compared with the PyTorch model it was exported from, on ``texts`` texts: fixed ones and,
    where the export was given a labelled sample, ``sample_texts`` of its rows.

    ``measured`` is False where the artifact cannot run on the exporting machine (Core ML off macOS); then
    ``max_abs_diff`` and ``agreement`` are None and ``note`` says why. ``max_abs_diff`` (the bound) is over
    the fixed texts' windows, ``sample_max_abs_diff`` over the sample's. ``agreement`` is over the
    ``counted_windows`` whose reference lies further than ``tolerance`` from the threshold; the
    ``excluded_windows`` nearer to it are left out. ``sample_quality`` holds accuracy and F1 of the reference
    and of the artifact on the sample's labelled rows. Bundles written before the sample have none of these
    (None).
    """

    reference: str
    texts: int
    windows: int
    max_abs_diff: float | None
    agreement: float | None
    tolerance: float
    min_agreement: float
    measured: bool = True
    note: str = ""
    sample_texts: int | None = None
    sample_windows: int | None = None
    sample_max_abs_diff: float | None = None
    counted_windows: int | None = None
    excluded_windows: int | None = None
    sample_quality: dict[str, Any] | None = None
    category_max_abs_diff: float | None = None  # max |ΔP(category)| over the fixed texts' windows, every category
    category_agreement: float | None = None  # same category decisions where the reference is decisive

    def figures(self) -> tuple[float, float]:
        """(max |ΔP(unsafe)|, decision agreement) of an artifact whose parity was measured."""
        if self.max_abs_diff is None or self.agreement is None:
            raise ValueError(f"parity was not measured: {self.note}")
        return self.max_abs_diff, self.agreement

    @property
    def passed(self) -> bool:
        categories = ((self.category_max_abs_diff or 0.0) <= self.tolerance
                      and (self.category_agreement is None or self.category_agreement >= self.min_agreement))
        return (self.measured and self.max_abs_diff is not None and self.agreement is not None
                and self.max_abs_diff <= self.tolerance and self.agreement >= self.min_agreement and categories)


# Parity fields a bundle written before the parity sample (or without categories) lacks; guard.json leaves them out
# where None.
_PARITY_OPTIONAL = ("sample_texts", "sample_windows", "sample_max_abs_diff", "counted_windows", "excluded_windows",
                    "sample_quality", "category_max_abs_diff", "category_agreement")


@dataclass(frozen=True, kw_only=True)
class Artifact(FileEntry):
    """One exported model (a file, or a folder such as an .mlpackage): format, precision and parity.

    ``batch`` is the batch size the graph was exported with where it is fixed (the mobile formats: 1), None
    where it is dynamic; ``spec`` holds what export checked of a model it could not run (Core ML on Linux).
    """

    format: str
    precision: str
    parity: Parity
    quantization: dict[str, Any] | None = None
    batch: int | None = None
    spec: dict[str, Any] | None = None


@dataclass(frozen=True)
class TextEncoding:
    """How texts become model inputs; the runtime and the Android demo follow it to the token."""

    pair_encoding: str = "tokenizer_pair"
    prompt_truncation_side: str = "left"
    window_overlap: int = 64
    pad_id: int = 0
    pad_token: str = "[PAD]"
    # A pair whose prompt is cut also pairs each other window of the prompt with the response's first: a harmful
    # request followed by padding is still read beside the answer (false in bundles from before it).
    prompt_windows: bool = False


@dataclass(frozen=True)
class CategoryHead:
    """A harm category the model scores (guard_sdk.categories): P(category) is the sigmoid of logit ``index``;
    the category is a violation at ``threshold`` or above."""

    name: str
    index: int
    threshold: float


@dataclass(frozen=True)
class TextViews:
    """The views of guard_sdk.views a bundle scores besides the raw text, and its look-alike table."""

    names: list[str]
    fold: dict[str, str]


@dataclass(frozen=True)
class Manifest:
    """The parsed guard.json."""

    name: str
    labels: list[str]
    unsafe_index: int
    threshold: float
    max_length: int
    tokenizer: FileEntry
    text: TextEncoding
    inputs: list[str]
    output: str
    artifacts: list[Artifact]
    source: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    categories: list[CategoryHead] = field(default_factory=list)  # none in a version 1 bundle
    views: TextViews | None = None  # none before version 3: the raw text alone is scored

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.schema_version == 1:
            del data["categories"]
        if self.views is None:
            del data["views"]
        for artifact in data["artifacts"]:
            for entry, optional in ((artifact, ("quantization", "batch", "spec")),
                                    (artifact["parity"], _PARITY_OPTIONAL)):
                for key in optional:
                    if entry[key] is None:
                        del entry[key]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        artifacts = [
            Artifact(**{**a, "parity": Parity(**a["parity"])}) for a in data["artifacts"]
        ]
        return cls(
            **{
                **data,
                "tokenizer": FileEntry(**data["tokenizer"]),
                "text": TextEncoding(**data["text"]),
                "artifacts": artifacts,
                "categories": [CategoryHead(**c) for c in data.get("categories", [])],
                "views": TextViews(**data["views"]) if "views" in data else None,
            }
        )


@cache
def _validator() -> Any:
    """The schema's validator, where "integer" means a JSON integer: the standard counts 128.0 as one, which
    would reach the tokenizer and the model as a float."""
    import jsonschema

    schema = json.loads(resources.files("guard_sdk").joinpath("guard.schema.json").read_text())
    base = jsonschema.Draft202012Validator
    strict = base.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
    return jsonschema.validators.extend(base, type_checker=strict)(schema)


def _check(data: dict[str, Any], where: Path) -> None:
    """Raise ManifestError on the first schema violation or impossible value in ``data``."""
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        raise ManifestError(f"{where}: {e.json_path}: {e.message}", where)
    if data["unsafe_index"] >= len(data["labels"]):
        raise ManifestError(f"{where}: unsafe_index {data['unsafe_index']} is outside labels", where)
    unsafe, other = data["labels"][data["unsafe_index"]], data["labels"][1 - data["unsafe_index"]]
    if label_value(unsafe) is None or label_value(other) is None:  # names that say nothing cannot be checked
        raise ManifestError(f"{where}: labels {data['labels']} must name one safe and one unsafe class in guard-sdk's "
                            "label vocabulary (safe / unsafe, benign / harmful, ...), as export writes them", where)
    if label_value(unsafe) == 0 or label_value(other) == 1:  # it would flag the safe texts and pass the harmful
        raise ManifestError(f"{where}: unsafe_index {data['unsafe_index']} names the label {unsafe!r} unsafe and "
                            f"{other!r} safe; the guard would be inverted", where)
    positions = data.get("source", {}).get("max_positions")
    if isinstance(positions, int) and data["max_length"] > positions:
        raise ManifestError(f"{where}: max_length {data['max_length']} exceeds the {positions} positions the model "
                            "has (source.max_positions)", where)
    heads = data.get("categories", [])
    for key in ("name", "index"):
        values = [c[key] for c in heads]
        if len(set(values)) != len(values):
            raise ManifestError(f"{where}: two categories share one {key}", where)
    if sorted(c["index"] for c in heads) != list(range(2, 2 + len(heads))):
        raise ManifestError(f"{where}: category indices must be the logits after the two labels' (2, 3, ...)", where)
    kinds = [(a["format"], a["precision"]) for a in data["artifacts"]]
    if len(set(kinds)) != len(kinds):  # a load asking for that format and precision could run either
        raise ManifestError(f"{where}: two artifacts share one format and precision", where)
    fold = data.get("views", {}).get("fold", {})
    wrong = sorted(c for c, to in fold.items() if c.isascii() or not (to.isascii() and to.isalnum()))
    if wrong:  # a look-alike imitates an ASCII letter or digit and is never one itself
        raise ManifestError(f"{where}: views.fold maps {wrong[0]!r} to {fold[wrong[0]]!r}; it maps characters "
                            "other than ASCII to the ASCII letter or digit they imitate", where)
    for entry in [data["tokenizer"], *data["artifacts"]]:
        rel = Path(entry["path"])
        if rel.is_absolute() or ".." in rel.parts:
            raise ManifestError(f"{where}: path {entry['path']!r} leaves the bundle folder", where)


def read_manifest(bundle_dir: str | Path) -> Manifest:
    """Parse and validate ``bundle_dir/guard.json``; refuse a missing, malformed or unknown-version one."""
    return parse_manifest(read_manifest_bytes(bundle_dir), Path(bundle_dir) / MANIFEST_NAME)


def read_manifest_bytes(bundle_dir: str | Path) -> bytes:
    """The bytes of ``bundle_dir/guard.json`` (``bundle_files.read_bundle_file``: a regular file, read once)."""
    path = Path(bundle_dir) / MANIFEST_NAME
    if not Path(bundle_dir).is_dir():
        what = "a file, not a bundle folder" if Path(bundle_dir).exists() else "no such bundle folder"
        raise ManifestError(f"{bundle_dir}: {what}", bundle_dir)
    try:
        return read_bundle_file(bundle_dir, MANIFEST_NAME, None, limit=MAX_MANIFEST_BYTES)
    except ArtifactMissingError as e:
        raise ManifestError(f"{path}: missing; a guard bundle is a folder with a guard.json", path) from e
    except BundleError as e:
        raise ManifestError(str(e), path) from e


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_manifest(data: bytes, path: Path) -> Manifest:
    """Validate guard.json's bytes (``path`` names it in errors) and parse them."""
    try:
        parsed = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ManifestError(f"{path}: not valid JSON ({e})", path) from e
    if not isinstance(parsed, dict):
        raise ManifestError(f"{path}: must hold a JSON object", path)
    version = parsed.get("schema_version")
    if version not in READ_VERSIONS or isinstance(version, bool):
        raise SchemaVersionError(
            f"{path}: schema_version {version!r} is not supported by this guard-sdk "
            f"(it reads versions {', '.join(map(str, READ_VERSIONS))}); upgrade guard-sdk or re-export the bundle",
            path,
        )
    _check(parsed, path)
    return Manifest.from_dict(parsed)


def write_manifest(bundle_dir: str | Path, manifest: Manifest) -> Path:
    """Validate ``manifest`` and write it to ``bundle_dir/guard.json`` atomically."""
    path = Path(bundle_dir) / MANIFEST_NAME
    data = manifest.to_dict()
    _check(data, path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _folder_files(path: Path) -> list[Path]:
    """Every file under a folder entry (an .mlpackage), sorted; a link or anything but a regular file there is
    refused rather than followed."""
    found = []
    for root, dirs, files in os.walk(path, followlinks=False):
        for name in dirs + files:
            full = Path(root) / name
            mode = os.lstat(full).st_mode
            if stat.S_ISLNK(mode) or not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise BundleError(f"{full}: not a regular file or folder (a link, FIFO or device); refused", full)
            if stat.S_ISREG(mode):
                found.append(full)
    return sorted(found, key=lambda p: p.relative_to(path).as_posix())


def sha256_entry(path: str | Path) -> str:
    """sha256 of a file; for a folder (an .mlpackage), of the lines "<relative path> <sha256 of it>\n" of
    every file in it, sorted by path, so a renamed, added, removed or changed file changes the hash."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    listing = "".join(f"{p.relative_to(path).as_posix()} {sha256_file(p)}\n" for p in _folder_files(path))
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


def entry_bytes(path: str | Path) -> int:
    """Size of a file, or the summed size of every file in a folder."""
    path = Path(path)
    return sum(p.stat().st_size for p in _folder_files(path)) if path.is_dir() else path.stat().st_size


def describe_file(bundle_dir: str | Path, rel_path: str) -> FileEntry:
    """The FileEntry (size and sha256) of a file or folder already in ``bundle_dir``."""
    full = Path(bundle_dir) / rel_path
    return FileEntry(path=rel_path, sha256=sha256_entry(full), bytes=entry_bytes(full))


def verified_path(bundle_dir: str | Path, entry: FileEntry) -> Path:
    """The path of a folder entry (an .mlpackage, which Core ML loads only from disk), once its size and
    sha256 match the manifest; refuse it otherwise. A file entry is read with ``verified_bytes`` instead."""
    full = Path(bundle_dir) / entry.path
    if not os.path.lexists(full):
        raise ArtifactMissingError(f"{full}: listed in {MANIFEST_NAME} but missing from the bundle", full)
    if os.path.islink(full) or not full.is_dir():
        raise BundleError(f"{full}: a folder entry must be a folder inside the bundle, not a link or file", full)
    size = entry_bytes(full)
    if size != entry.bytes:
        raise ArtifactChangedError(
            f"{full}: {size} bytes, but {MANIFEST_NAME} recorded {entry.bytes}; the file was changed "
            "or truncated, re-export the bundle",
            full,
        )
    if sha256_entry(full) != entry.sha256:
        raise ArtifactChangedError(
            f"{full}: sha256 differs from {MANIFEST_NAME}; the file was changed or tampered with, "
            "re-export the bundle",
            full,
        )
    return full


def verified_bytes(bundle_dir: str | Path, entry: FileEntry) -> bytes:
    """A file entry's bytes, read once and checked against its recorded size and sha256: what is loaded."""
    return read_bundle_file(bundle_dir, entry.path, entry.bytes, entry.sha256)


def verified_source(bundle_dir: str | Path, entry: FileEntry) -> bytes | Path:
    """What a loader takes for ``entry``, verified: a file's bytes, or a folder's path (``verified_path``)."""
    full = Path(bundle_dir) / entry.path
    if full.is_dir() and not full.is_symlink():
        return verified_path(bundle_dir, entry)
    return verified_bytes(bundle_dir, entry)


def verify_bundle(bundle_dir: str | Path) -> Manifest:
    """Read the manifest and check every file it lists."""
    manifest = read_manifest(bundle_dir)
    verify_files(bundle_dir, manifest)
    return manifest


def verify_files(bundle_dir: str | Path, manifest: Manifest) -> None:
    """Check every file ``manifest`` lists against its size and sha256."""
    for entry in [manifest.tokenizer, *manifest.artifacts]:
        verified_source(bundle_dir, entry)
