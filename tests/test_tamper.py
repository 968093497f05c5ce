"""The tamper suite: well over 80 mutations of a real exported bundle, each refused with a typed error or shown
harmless (the same verdicts as the untouched bundle), none hanging; the same suite and the fix-ups a lone
guard.json cannot catch (a swapped model or tokenizer with its sha256 rewritten, a changed threshold) all refused
once the bundle is signed and loaded with its trusted key; and a model swapped in a loop while it is loaded
never runs unchecked."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from guard_sdk import Guard, GuardError
from guard_sdk.signing import SIGNATURE_NAME, generate_keys, sign_bundle

from .conftest import SAFE_TEXTS, UNSAFE_TEXTS

TEXTS = UNSAFE_TEXTS[:3] + SAFE_TEXTS[:3]
Mutation = Callable[[Path], None]


def _edit(change: Callable[[dict], None]) -> Mutation:
    def apply(folder: Path) -> None:
        data = json.loads((folder / "guard.json").read_text())
        change(data)
        (folder / "guard.json").write_text(json.dumps(data))
    return apply


def _set(path: tuple, value: object) -> Mutation:
    def change(data: dict) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return _edit(change)


def _delete(path: tuple) -> Mutation:
    def change(data: dict) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return _edit(change)


def _raw(text: Callable[[str], str]) -> Mutation:
    def apply(folder: Path) -> None:
        path = folder / "guard.json"
        path.write_text(text(path.read_text()))
    return apply


def _replace_file(name: str, make: Callable[[Path, Path], None]) -> Mutation:
    """Remove ``name`` and let ``make(path, folder)`` put something in its place."""
    def apply(folder: Path) -> None:
        path = folder / name
        path.unlink()
        make(path, folder)
    return apply


def _link_outside(name: str) -> Mutation:
    """``name`` moved out of the bundle, a link to it left in its place: the same bytes, but not the bundle's."""
    def apply(folder: Path) -> None:
        outside = folder.parent / f"outside-{name}"
        shutil.move(folder / name, outside)
        (folder / name).symlink_to(outside)
    return apply


def _bytes(name: str, change: Callable[[bytes], bytes]) -> Mutation:
    def apply(folder: Path) -> None:
        (folder / name).write_bytes(change((folder / name).read_bytes()))
    return apply


def _fix_up(name: str, replacement: Path) -> Mutation:
    """Swap ``name`` for another file and rewrite its size and sha256 in guard.json: what only a signature catches."""
    def apply(folder: Path) -> None:
        data = replacement.read_bytes()
        (folder / name).write_bytes(data)
        manifest = json.loads((folder / "guard.json").read_text())
        for entry in [manifest["tokenizer"], *manifest["artifacts"]]:
            if entry["path"] == name:
                entry.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
        (folder / "guard.json").write_text(json.dumps(manifest))
    return apply


MODEL = "model.int8.onnx"
LOADED = 1  # the bundle's artifacts are model.onnx, then MODEL: the one Guard.load(precision="int8") runs
FIELDS = [("schema_version",), ("name",), ("labels",), ("unsafe_index",), ("threshold",), ("max_length",),
          ("inputs",), ("output",), ("artifacts",), ("text", "window_overlap"), ("text", "pad_id"),
          ("text", "prompt_truncation_side"), ("tokenizer", "path"), ("tokenizer", "sha256"), ("tokenizer", "bytes"),
          ("artifacts", 0, "path"), ("artifacts", 0, "sha256"), ("artifacts", 0, "bytes"),
          ("artifacts", 0, "format"), ("artifacts", 0, "precision")]
BAD_VALUES = [None, "x", 1.5, -1, [], {}, True, 10**12]


def mutations(other_model: Path, other_tokenizer: Path) -> dict[str, Mutation]:
    """Every mutation of the suite, by name: wrong types and values of each guard.json field (of the artifact
    that is loaded), values that would disable or invert the guard, malformed JSON, changed files, links, FIFOs
    and folders in a file's place."""
    found: dict[str, Mutation] = {}
    for path in FIELDS:
        path = tuple(LOADED if key == 0 else key for key in path)
        found[f"delete {path}"] = _delete(path)
        for value in BAD_VALUES:
            found[f"{path} = {value!r}"[:80]] = _set(path, value)
    found.update({
        "threshold 0": _set(("threshold",), 0), "threshold 1.0 (never unsafe)": _set(("threshold",), 1.0),
        "threshold NaN": _raw(lambda t: t.replace('"threshold": ', '"threshold": NaN, "_": ')),
        "threshold Infinity": _raw(lambda t: t.replace('"threshold": ', '"threshold": Infinity, "_": ')),
        "unsafe_index 0 (inverted)": _set(("unsafe_index",), 0),
        "labels swapped (inverted)": _set(("labels",), ["unsafe", "safe"]),
        "labels renamed, unsafe_index 0 (inverted)": _raw(lambda t: t.replace('"safe"', '"A"').replace(
            '"unsafe"', '"B"').replace('"unsafe_index": 1', '"unsafe_index": 0')),
        "labels renamed": _set(("labels",), ["LABEL_0", "LABEL_1"]),
        "max_length 128.0": _set(("max_length",), 128.0), "max_length past the positions": _set(("max_length",), 4096),
        "max_length 8": _set(("max_length",), 8), "window_overlap = max_length": _set(("text", "window_overlap"), 64),
        "schema_version 4": _set(("schema_version",), 4), "schema_version '2'": _set(("schema_version",), "2"),
        "schema_version 2 with views": _set(("schema_version",), 2),
        "views: an unknown view": _set(("views", "names"), ["raw", "rot47"]),
        "views: an ASCII letter folded": _set(("views", "fold", "a"), "x"),
        "views: a letter folded to two": _set(("views", "fold", "\u0430"), "aa"),
        "unknown top-level field": _set(("rogue",), 1), "artifact path ../model": _set(("artifacts", 0, "path"),
                                                                                     "../model.int8.onnx"),
        "artifact path absolute": _set(("artifacts", LOADED, "path"), "/etc/passwd"),
        "tokenizer path is the model": _set(("tokenizer", "path"), MODEL),
        "a category the model has no output for": _set(("categories",), [{"name": "hate", "index": 2,
                                                                          "threshold": 0.5}]),
        "guard.json empty": _raw(lambda _: ""), "guard.json a list": _raw(lambda _: "[]"),
        "guard.json invalid UTF-8": _bytes("guard.json", lambda b: b"\xff\xfe" + b),
        "guard.json 100,000 levels deep": _raw(lambda _: "[" * 100_000 + "]" * 100_000),
        "guard.json 5 MB": _raw(lambda t: t + " " * (5 << 20)),
        "model truncated": _bytes(MODEL, lambda b: b[: len(b) // 2]),
        "model one byte flipped": _bytes(MODEL, lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:]),
        "model one byte appended": _bytes(MODEL, lambda b: b + b"\0"),
        "model swapped": _bytes(MODEL, lambda _: other_model.read_bytes()),
        "tokenizer swapped": _bytes("tokenizer.json", lambda _: other_tokenizer.read_bytes()),
        "model missing": lambda f: (f / MODEL).unlink(),
        "tokenizer missing": lambda f: (f / "tokenizer.json").unlink(),
        "guard.json missing": lambda f: (f / "guard.json").unlink(),
        "model a link to /dev/zero": _replace_file(MODEL, lambda p, _: p.symlink_to("/dev/zero")),
        "guard.json a link to /dev/zero": _replace_file("guard.json", lambda p, _: p.symlink_to("/dev/zero")),
        "tokenizer a FIFO": _replace_file("tokenizer.json", lambda p, _: os.mkfifo(p)),
        "model a FIFO": _replace_file(MODEL, lambda p, _: os.mkfifo(p)),
        "guard.json a FIFO": _replace_file("guard.json", lambda p, _: os.mkfifo(p)),
        "model a folder": _replace_file(MODEL, lambda p, _: p.mkdir()),
        "tokenizer a link to the same bytes outside": _link_outside("tokenizer.json"),
        "model a link to the same bytes outside": _link_outside(MODEL),
        "model a link to itself": _replace_file(MODEL, lambda p, _: p.symlink_to(p.name)),
    })
    return found


# Changes a reader of guard.json alone cannot tell from a re-export: only a signature catches them.
def fix_ups(other_model: Path, other_tokenizer: Path) -> dict[str, Mutation]:
    return {"model swapped, sha256 fixed up": _fix_up(MODEL, other_model),
            "tokenizer swapped, sha256 fixed up": _fix_up("tokenizer.json", other_tokenizer),
            "threshold 0.99": _set(("threshold",), 0.99), "name changed": _set(("name",), "trusted-guard"),
            "guard.sig removed": lambda f: (f / SIGNATURE_NAME).unlink(),
            "guard.sig garbage": lambda f: (f / SIGNATURE_NAME).write_text("{]"),
            "guard.sig of another algorithm": _sig(lambda r: {**r, "algorithm": "rsa"}),
            "guard.sig signature of other bytes": _sig(lambda r: {**r, "signature": "AAAA" + r["signature"][4:]}),
            "guard.sig a link": _replace_file(SIGNATURE_NAME, lambda p, f: p.symlink_to(f / "guard.json"))}


def _sig(change: Callable[[dict], dict]) -> Mutation:
    def apply(folder: Path) -> None:
        path = folder / SIGNATURE_NAME
        path.write_text(json.dumps(change(json.loads(path.read_text()))))
    return apply


def _outcome(folder: Path, expected: list, **load) -> str:
    """"refused: ErrorType" for a typed refusal at load or classify, "harmless" for the untouched verdicts."""
    try:
        guard = Guard.load(folder, precision="int8", **load)
        verdicts = [(v.unsafe, round(v.score, 6)) for v in guard.classify_batch(TEXTS)]
    except GuardError as e:
        return f"refused: {type(e).__name__}"
    assert verdicts == expected, f"{folder.name}: accepted, and the verdicts changed"
    return "harmless"


@pytest.fixture(scope="module")
def others(categories_bundle, tiny_deberta):
    return categories_bundle / MODEL, tiny_deberta / "tokenizer.json"


@pytest.mark.timeout(600)  # a mutation that hangs fails the suite instead of stalling it
def test_every_mutation_is_refused_or_harmless(bert_bundle, others, tmp_path):
    expected = [(v.unsafe, round(v.score, 6)) for v in Guard.load(bert_bundle, precision="int8").classify_batch(TEXTS)]
    assert json.loads((bert_bundle / "guard.json").read_text())["artifacts"][LOADED]["path"] == MODEL
    suite = mutations(*others)
    assert len(suite) >= 200
    outcomes = {}
    for i, (name, mutate) in enumerate(suite.items()):
        folder = tmp_path / f"m{i}" / "bundle"
        shutil.copytree(bert_bundle, folder)
        mutate(folder)
        outcomes[name] = _outcome(folder, expected)
    harmless = sorted(n for n, o in outcomes.items() if o == "harmless")
    # A new name is the only edit that may pass; everything that could disable, invert or swap the guard is refused.
    assert set(harmless) <= {"('name',) = 'x'"}, harmless
    for must in ("threshold 1.0 (never unsafe)", "threshold NaN", "unsafe_index 0 (inverted)", "max_length 128.0",
                 "labels swapped (inverted)", "max_length past the positions", "model a link to /dev/zero",
                 "model a FIFO", "tokenizer a link to the same bytes outside", "guard.json 5 MB"):
        assert outcomes[must].startswith("refused"), (must, outcomes[must])
    assert outcomes["model swapped"] == "refused: ArtifactChangedError"
    assert outcomes["tokenizer a FIFO"] == outcomes["model a link to /dev/zero"] == "refused: BundleError"


@pytest.mark.timeout(600)
def test_a_signed_bundle_refuses_every_mutation_and_every_fix_up(bert_bundle, others, tmp_path):
    signed = tmp_path / "signed"
    shutil.copytree(bert_bundle, signed)
    generate_keys(tmp_path / "key.pem", tmp_path / "key.pub.pem")
    generate_keys(tmp_path / "other.pem", tmp_path / "other.pub.pem")
    sign_bundle(signed, tmp_path / "key.pem")
    trusted = [tmp_path / "key.pub.pem"]
    expected = [(v.unsafe, round(v.score, 6)) for v in Guard.load(signed, precision="int8").classify_batch(TEXTS)]
    assert _outcome(signed, expected, trusted_keys=trusted) == "harmless"
    assert _outcome(signed, expected, trusted_keys=str(trusted[0])) == "harmless"  # one key, not its characters
    assert _outcome(signed, expected, trusted_keys=[tmp_path / "other.pub.pem"]) == "refused: SignatureError"
    suite = {**mutations(*others), **fix_ups(*others)}
    refused = {}
    for i, (name, mutate) in enumerate(suite.items()):
        folder = tmp_path / f"s{i}" / "bundle"
        shutil.copytree(signed, folder)
        mutate(folder)
        refused[name] = _outcome(folder, expected, trusted_keys=trusted)
    assert all(o.startswith("refused") for o in refused.values()), [n for n, o in refused.items() if o == "harmless"]
    for name in fix_ups(*others):
        if name != "guard.sig a link":
            assert refused[name] == "refused: SignatureError", name


def test_a_model_swapped_while_guards_load_never_runs_unchecked(bert_bundle, others, tmp_path):
    """528 loads raced in the original issue; here a thread swaps the model for another in a loop while guards
    load: each load runs the checked model or is refused, never the swapped one (0 substitutions)."""
    folder = tmp_path / "bundle"
    shutil.copytree(bert_bundle, folder)
    good, bad = (folder / MODEL).read_bytes(), others[0].read_bytes()
    expected = [(v.unsafe, round(v.score, 6)) for v in Guard.load(folder, precision="int8").classify_batch(TEXTS)]
    stop = threading.Event()

    def swap() -> None:
        staged = folder / ".staged"
        while not stop.is_set():
            for data in (bad, good):
                staged.write_bytes(data)
                os.replace(staged, folder / MODEL)

    swapper = threading.Thread(target=swap)
    swapper.start()
    outcomes = {"ran the checked model": 0, "refused": 0}
    try:
        for _ in range(200):
            outcome = _outcome(folder, expected)  # asserts the verdicts of any load that succeeds
            outcomes["refused" if outcome.startswith("refused") else "ran the checked model"] += 1
    finally:
        stop.set()
        swapper.join()
    assert outcomes["ran the checked model"] > 0 and outcomes["refused"] > 0, outcomes
