"""Labelled safety data in one schema, from a hub id, a local file, or the built-in readers of the shared sources.

Every row has ``prompt``, ``response`` (None for a prompt-level row), ``label`` (1 unsafe, 0 safe; for a
response-level row it says whether the *response* is harmful), ``source``, ``category`` and ``group``.
``group`` is what a row's twins share: the normalised harmful goal for a jailbreak row (its prompt wraps
the goal), else the normalised prompt. Splits are drawn per group, so a prompt, its responses and its
copies in other sources always land in the same split, and nothing an evaluation sees is trained on.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guard_sdk.errors import InputError

COLUMNS = ("prompt", "response", "label", "source", "category", "group")
SPLITS = ("train", "dev", "test")
DATA_DIR_ENV = "GUARD_DATA_DIR"
DEFAULT_DATA_DIR = Path("..") / "shared" / "data"
# Values a label column may hold, and what they mean; anything else is refused with its row.
# (False and True hash as 0 and 1, so booleans are covered too.)
LABEL_VALUES: dict[object, int] = {
    0: 0, 1: 1, "0": 0, "1": 1,
    "safe": 0, "unsafe": 1, "benign": 0, "harmful": 1, "unharmful": 0, "harmless": 0,
}
FILE_FORMATS = {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class DataError(InputError):
    """A data file or source that cannot be read as labelled safety data; the message names file and row."""


@dataclass(frozen=True)
class Row:
    """One labelled example, before it becomes a row of a ``datasets.Dataset``."""

    prompt: str
    response: str | None
    label: int | None
    source: str
    category: str | None = None
    group: str | None = None  # None: the normalised prompt

    def record(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "response": self.response, "label": self.label, "source": self.source,
                "category": self.category, "group": self.group or normalize(self.prompt)}


def normalize(text: str) -> str:
    """The text two near-duplicates share: NFKC, case-folded, letters and digits only, single spaces."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


def data_dir(path: str | Path | None = None) -> Path:
    """The shared data folder: ``path``, else $GUARD_DATA_DIR, else ../shared/data (the development default)."""
    chosen = Path(path or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)
    if not chosen.is_dir():
        raise DataError(f"{chosen}: no data folder there; pass --data-dir or set {DATA_DIR_ENV}")
    return chosen


# ---- reading files, with the row of every problem ------------------------------------------------------


def _decode(path: Path, raw: bytes) -> str:
    """UTF-8 text of a file; a byte that is not UTF-8 (a file of mixed encodings) is reported by line."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line}: not valid UTF-8 (byte {e.start}); save the file as UTF-8") from e


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a jsonl, json (a list of objects), csv or parquet file, as dicts."""
    path = Path(path)
    fmt = FILE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unknown file type; use one of {', '.join(FILE_FORMATS)}")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as e:  # pyarrow raises its own error types for a corrupt file
            raise DataError(f"{path}: not a readable parquet file ({e})") from e
    text = _decode(path, path.read_bytes())
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(text, newline="")))
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from e
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise DataError(f"{path}: a .json data file must hold a list of objects")
        return data
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            raise DataError(f"{path}: row {number}: empty line")
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: row {number}: not valid JSON ({e.msg})") from e
        if not isinstance(record, dict):
            raise DataError(f"{path}: row {number}: expected a JSON object")
        records.append(record)
    return records


def label_value(value: object, label_map: Mapping[object, int] | None = None) -> int | None:
    """0 or 1 for a known label value, else None."""
    table = LABEL_VALUES if label_map is None else label_map
    key = value.strip().lower() if isinstance(value, str) else value
    try:
        return table.get(key)
    except TypeError:  # an unhashable value (a list, a dict) is no label
        return None


def rows_from_records(
    records: Iterable[Mapping[str, Any]],
    where: str,
    source: str,
    columns: Mapping[str, str] | None = None,
    label_map: Mapping[object, int] | None = None,
) -> list[Row]:
    """Map and check records: ``columns`` maps our names (prompt, response, label, category) to the file's."""
    names = {"prompt": "prompt", "response": "response", "label": "label", "category": "category", **(columns or {})}
    unknown = set(names) - {"prompt", "response", "label", "category"}
    if unknown:
        raise DataError(f"{where}: unknown column mapping for {sorted(unknown)}; map prompt, response, label, category")
    rows = []
    for number, record in enumerate(records, start=1):
        # prompt and label are always needed; response and category only where the caller named a column.
        named = [n for k in ("prompt", "label", *(columns or {})) for n in names[k].split("|")]
        missing = list(dict.fromkeys(n for n in named if n not in record))
        if missing:
            raise DataError(f"{where}: row {number}: missing column(s) {', '.join(missing)}; it has "
                            f"{', '.join(map(str, record)) or 'none'} (map yours with --columns prompt=NAME,...)")
        prompt, response = record[names["prompt"]], record.get(names["response"])
        if not isinstance(prompt, str) or not prompt.strip():
            raise DataError(f"{where}: row {number}: empty prompt")
        if response is not None and not isinstance(response, str):
            raise DataError(f"{where}: row {number}: response must be text, got {type(response).__name__}")
        # "a|b": the first of the label columns that holds a value, e.g. WildGuardMix's response_harm_label
        # where a row has a response and prompt_harm_label where it has none.
        value = next((record[n] for n in names["label"].split("|") if record[n] is not None), None)
        label = label_value(value, label_map)
        if label is None:
            raise DataError(f"{where}: row {number}: unknown label value {value!r}; "
                            f"use 0/1, safe/unsafe, or pass a label map")
        category = record.get(names["category"])
        # A csv cannot say None: an empty response is read as no response (a prompt-level row).
        rows.append(Row(prompt, response or None, label, source, None if category in (None, "") else str(category)))
    if not rows:
        raise DataError(f"{where}: no rows")
    return rows


def to_dataset(rows: Sequence[Row]) -> Any:
    """A ``datasets.Dataset`` in the one schema."""
    import datasets

    return datasets.Dataset.from_list([r.record() for r in rows], features=features())


def features() -> Any:
    import datasets

    text = datasets.Value("string")
    return datasets.Features({"prompt": text, "response": text, "label": datasets.Value("int8"), "source": text,
                              "category": text, "group": text})


# ---- built-in readers for ../shared/data (its README says what each label means) ---------------------------


def _json(path: Path) -> Any:
    return json.loads(_decode(path, path.read_bytes()))


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(_decode(path, path.read_bytes()), newline="")))


def _refusal_direction(root: Path) -> list[Row]:
    """The pooled harmful instructions (label 1) and benign Alpaca instructions (label 0), all six splits."""
    rows = []
    for kind, label in (("harmful", 1), ("harmless", 0)):
        for split in SPLITS[:1] + ("val", "test"):
            for r in _json(root / "refusal_direction" / "splits" / f"{kind}_{split}.json"):
                rows.append(Row(r["instruction"], None, label, f"refusal_direction:{kind}", r.get("category")))
    return rows


def _advbench(root: Path) -> list[Row]:
    folder = root / "advbench"
    return ([Row(r["goal"], None, 1, "advbench:behaviors") for r in _csv(folder / "harmful_behaviors.csv")]
            + [Row(r["target"], None, 1, "advbench:strings") for r in _csv(folder / "harmful_strings.csv")])


def _harmbench(root: Path) -> list[Row]:
    """HarmBench text behaviours; a contextual behaviour's context comes before it, as HarmBench prompts it."""
    rows = []
    for r in _csv(root / "harmbench_behaviors" / "harmbench_behaviors_text_all.csv"):
        context = (r.get("ContextString") or "").strip()
        prompt = f"{context}\n\n---\n\n{r['Behavior']}" if context else r["Behavior"]
        rows.append(Row(prompt, None, 1, "harmbench", r["SemanticCategory"], normalize(r["Behavior"])))
    return rows


def _strongreject(root: Path) -> list[Row]:
    return [Row(r["forbidden_prompt"], None, 1, "strongreject", r["category"])
            for r in _csv(root / "harmbench_behaviors" / "strongreject_dataset.csv")]


def _malicious_instruct(root: Path) -> list[Row]:
    text = _decode(root / "harmbench_behaviors" / "malicious_instruct.txt",
                   (root / "harmbench_behaviors" / "malicious_instruct.txt").read_bytes())
    return [Row(line.strip(), None, 1, "malicious_instruct") for line in text.splitlines() if line.strip()]


def _simplesafetytests(root: Path) -> list[Row]:
    return [Row(r["prompts_final"], None, 1, "simplesafetytests", r["harm_area"])
            for r in _csv(root / "simplesafetytests" / "sst_test_cases.csv")]


def _xstest(root: Path) -> list[Row]:
    """XSTest: 250 safe prompts that look unsafe (0) and 200 unsafe contrasts (1); category is the type."""
    return [Row(r["prompt"], None, LABEL_VALUES[r["label"]], "xstest", r["type"])
            for r in _csv(root / "xstest" / "xstest_prompts.csv")]


def _xstest_responses(root: Path) -> list[Row]:
    """Five models' XSTest completions: harmful (1) only where an unsafe prompt got full compliance."""
    unsafe = {r["id"]: r["label"] == "unsafe" for r in _csv(root / "xstest" / "xstest_prompts.csv")}
    rows = []
    for path in sorted((root / "xstest" / "model_completions").glob("*.csv")):
        for r in _csv(path):
            harmful = unsafe[r["id"].removeprefix("v2-")] and r["final_label"].startswith("1_")
            rows.append(Row(r["prompt"], r["completion"], int(harmful), "xstest_responses", r["type"]))
    return rows


def _jbb(root: Path) -> list[Row]:
    """JailbreakBench attack artifacts with a response; label is the judge's ``jailbroken``.

    The ``test-artifact`` folder holds placeholder responses from the package's own tests and is skipped.
    """
    rows = []
    folder = root / "jbb_artifacts" / "attack-artifacts"
    for path in sorted(folder.glob("*/*/*.json")):
        if path.relative_to(folder).parts[0] == "test-artifact":
            continue
        for j in _json(path)["jailbreaks"]:
            if j.get("prompt") and j.get("response"):
                rows.append(Row(j["prompt"], j["response"], int(bool(j["jailbroken"])), "jbb", j.get("category"),
                                normalize(j["goal"])))
    return rows


def _alpaca_eval(root: Path) -> list[Row]:
    """Benign instructions with four models' answers: all safe responses."""
    return [Row(r["instruction"], r["output"], 0, "alpaca_eval", r.get("dataset"))
            for path in sorted((root / "alpaca_eval").glob("*_model_outputs.json")) for r in _json(path)]


def _hh_turn(dialogue: str) -> tuple[str, str | None]:
    """The first human turn of an Anthropic HH dialogue and the assistant's answer to it."""
    parts = re.split(r"\n\n(Human|Assistant): ", "\n\n" + dialogue.lstrip("\n"))
    turns = list(zip(parts[1::2], parts[2::2]))
    if not turns or turns[0][0] != "Human":
        return "", None
    answer = turns[1][1].strip() if len(turns) > 1 and turns[1][0] == "Assistant" else None
    return turns[0][1].strip(), answer


def _hh_harmless_base(root: Path) -> list[Row]:
    """HH harmless-base red-team openings with the preferred reply. It has no harm label: label is None,
    for a teacher to label (HarmAug); training and evaluation refuse unlabelled rows."""
    rows = []
    path = root / "hh_harmless_base" / "test.jsonl"
    for line in _decode(path, path.read_bytes()).splitlines():
        prompt, response = _hh_turn(json.loads(line)["chosen"])
        if prompt:
            rows.append(Row(prompt, response, None, "hh_harmless_base"))
    return rows


BUILTIN: dict[str, Callable[[Path], list[Row]]] = {
    "refusal_direction": _refusal_direction,
    "advbench": _advbench,
    "harmbench": _harmbench,
    "strongreject": _strongreject,
    "malicious_instruct": _malicious_instruct,
    "simplesafetytests": _simplesafetytests,
    "xstest": _xstest,
    "xstest_responses": _xstest_responses,
    "jbb": _jbb,
    "alpaca_eval": _alpaca_eval,
    "hh_harmless_base": _hh_harmless_base,
}
UNLABELLED = frozenset({"hh_harmless_base"})


def load_builtin(name: str, root: str | Path | None = None) -> Any:
    """One built-in source from the shared data folder, as a Dataset."""
    if name not in BUILTIN:
        raise DataError(f"unknown built-in source {name!r}; known: {', '.join(BUILTIN)}")
    folder = data_dir(root)
    try:
        return to_dataset(BUILTIN[name](folder))
    except (OSError, KeyError) as e:
        raise DataError(f"{folder}: cannot read built-in source {name!r} ({type(e).__name__}: {e})") from e


def load_data(
    spec: str | Path,
    *,
    root: str | Path | None = None,
    columns: Mapping[str, str] | None = None,
    label_map: Mapping[object, int] | None = None,
    split: str | None = None,
    source: str | None = None,
    config: str | None = None,
) -> Any:
    """A Dataset from a built-in source name, a local file, a saved Dataset folder, or a hub id.

    ``columns`` maps prompt/response/label/category to the data's own column names; ``split`` picks a split
    of a hub dataset or a saved DatasetDict, ``config`` a hub dataset's configuration; ``source`` names the
    rows (default: the file or hub id).
    """
    spec_str = str(spec)
    if spec_str in BUILTIN:
        return load_builtin(spec_str, root)
    path = Path(spec)
    if path.is_file() or path.suffix.lower() in FILE_FORMATS:
        records = read_records(path)
        return to_dataset(rows_from_records(records, str(path), source or path.stem, columns, label_map))
    import datasets

    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file()):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DataError(f"{path}: holds the splits {', '.join(loaded)}; pick one with split= (--split)")
            loaded = loaded[split]
        if set(COLUMNS) <= set(loaded.column_names):
            return loaded
        return to_dataset(rows_from_records(loaded, str(path), source or path.name, columns, label_map))
    try:  # a hub id, or a folder of data files that `datasets` knows how to read
        loaded = datasets.load_dataset(spec_str, config, split=split or "train")
    except Exception as e:  # datasets raises many types (offline, not found, bad config); name the spec
        raise DataError(f"{spec_str}: not a built-in source, a data file or a loadable dataset ({e})") from e
    return to_dataset(rows_from_records(loaded, spec_str, source or spec_str, columns, label_map))


def concat(parts: Sequence[Any]) -> Any:
    import datasets

    schema = features()
    return datasets.concatenate_datasets([p if p.features == schema else p.cast(schema) for p in parts])


# ---- splits without leakage --------------------------------------------------------------------------------


def split_of(group: str, seed: int, fractions: Sequence[float]) -> int:
    """Index of the split a group falls in: a hash of (seed, group), so the same for any row order."""
    digest = hashlib.sha256(f"{seed}\x00{group}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    total = 0.0
    for index, share in enumerate(fractions):
        total += share
        if point < total:
            return index
    return len(fractions) - 1


def _key(row: Mapping[str, Any]) -> tuple[str, str | None, int]:
    response = row["response"]
    return normalize(row["prompt"]), None if response is None else normalize(response), row["label"]


def make_splits(
    dataset: Any,
    seed: int,
    fractions: Mapping[str, float],
    holdout: Any | None = None,
) -> Any:
    """train/dev/test (the names of ``fractions``) by group, then the leftovers removed.

    Drops rows that repeat another's normalised (prompt, response, label) within a split, and every
    train or dev row that shares a group or a normalised prompt with a ``holdout`` row (a source kept for
    evaluation only). Unlabelled rows are refused.
    """
    import datasets

    if abs(sum(fractions.values()) - 1.0) > 1e-6 or min(fractions.values()) < 0:
        raise DataError(f"split fractions must be non-negative and sum to 1, got {dict(fractions)}")
    unlabelled = sum(label is None for label in dataset["label"])
    if unlabelled:
        raise DataError(f"{unlabelled} rows have no label; label them with a teacher before splitting")
    banned: set[str] = set()
    if holdout is not None:
        banned = set(holdout["group"]) | {normalize(p) for p in holdout["prompt"]}
    names = list(fractions)
    shares = [fractions[n] for n in names]
    chosen: dict[str, list[int]] = {n: [] for n in names}
    seen: dict[str, set[tuple[str, str | None, int]]] = {n: set() for n in names}
    for index, row in enumerate(dataset):
        if banned and (row["group"] in banned or normalize(row["prompt"]) in banned):
            continue
        name = names[split_of(row["group"], seed, shares)]
        key = _key(row)
        if key not in seen[name]:
            seen[name].add(key)
            chosen[name].append(index)
    return datasets.DatasetDict({n: dataset.select(chosen[n]) for n in names})


def overlap(a: Any, b: Any) -> int:
    """How many rows of ``a`` share a group or a normalised prompt with a row of ``b`` (0 means no leakage)."""
    keys = set(b["group"]) | {normalize(p) for p in b["prompt"]}
    return sum(g in keys or normalize(p) in keys for g, p in zip(a["group"], a["prompt"]))


def cap_per_source(dataset: Any, limit: int | None, seed: int) -> Any:
    """At most ``limit`` rows of each source, drawn by seed (a 30k-row benign pool would drown the rest)."""
    if limit is None:
        return dataset
    import numpy as np

    rng = np.random.default_rng(seed)
    sources = np.asarray(dataset["source"])
    keep: list[int] = []
    for name in sorted(set(sources)):
        index = np.flatnonzero(sources == name)
        keep.extend(sorted(rng.choice(index, size=min(limit, len(index)), replace=False).tolist()))
    return dataset.select(sorted(keep))
