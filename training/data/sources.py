"""Built-in readers for the sources in ../shared/data; its README says what each label means."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from guard_sdk.jsonl import BadLine, jsonl_lines
from guard_sdk.training.data.readers import _decode
from guard_sdk.training.data.schema import LABEL_VALUES, SPLITS, DataError, Row, normalize, to_dataset

DATA_DIR_ENV = "GUARD_DATA_DIR"


DEFAULT_DATA_DIR = Path("..") / "shared" / "data"


def data_dir(path: str | Path | None = None) -> Path:
    """The shared data folder: ``path``, else $GUARD_DATA_DIR, else ../shared/data (the development default)."""
    chosen = Path(path or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)
    if not chosen.is_dir():
        raise DataError(f"{chosen}: no data folder there; pass --data-dir or set {DATA_DIR_ENV}")
    return chosen


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
    return [Row(line.strip(), None, 1, "malicious_instruct") for line in text.split("\n") if line.strip()]


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
    for _, record in jsonl_lines(path.read_bytes()):
        if isinstance(record, BadLine):
            raise DataError(f"{path}: {record.error}")
        prompt, response = _hh_turn(record["chosen"])
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
