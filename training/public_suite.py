"""The public evaluation suite: one guard scored on every public evaluation set of the shared data folder at one
threshold, as one table; under it, what other guards' papers report on the same sets (context, not measured here).

The sets are data (``SETS``); the other guards' figures are a YAML file (``PUBLISHED_FIGURES``), checked entry by
entry. ``guard-sdk eval --suite public`` runs the suite; ``update_marked`` writes its tables into a markdown file
(a doc, a bundle's MODEL_CARD.md) between two marker comments and leaves the rest of the file as it was.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from guard_sdk import marked
from guard_sdk.errors import InputError
from guard_sdk.training.evaluate import category_report, metrics

log = logging.getLogger(__name__)

# What the suite scores with: P(unsafe) of each (prompt, response) pair, in order.
Scorer = Callable[[Sequence[str], Sequence[str | None]], np.ndarray]

BINARY = ("f1", "auprc", "recall", "fpr")  # the figures of a set with safe and unsafe rows
COLUMNS = {"f1": "F1", "auprc": "AUPRC", "recall": "recall", "fpr": "FPR"}  # the table's figure columns
# suite.json also gives each set's figures per kind of row (its category column: XSTest's types, HateCheck's
# functionalities, CoCoNot's subcategories), where it has 2 to this many: which look-alikes a model flags.
MAX_KINDS = 100


@dataclass(frozen=True)
class SuiteSet:
    """One public evaluation set: a built-in source (``guard_sdk.training.data.BUILTIN``) and how it is shown.

    ``shown``: the figures its row shows (the others are "–", as a set that is all safe has no recall and an AUPRC
    of a set that is all unsafe says nothing); suite.json keeps every figure. ``by``: sub-sets, as (key, name), whose
    rows have source ``<source>:<key>`` and get a row of their own, in this order (MultiJail's languages).
    """

    source: str
    title: str
    shown: tuple[str, ...] = BINARY
    by: tuple[tuple[str, str], ...] = ()


MULTIJAIL_LANGUAGES = (("en", "English"), ("zh", "Chinese"), ("it", "Italian"), ("vi", "Vietnamese"),
                       ("ar", "Arabic"), ("ko", "Korean"), ("th", "Thai"), ("bn", "Bengali"), ("sw", "Swahili"),
                       ("jv", "Javanese"))

SETS: tuple[SuiteSet, ...] = (
    SuiteSet("xstest", "XSTest prompts"),
    SuiteSet("xstest_responses", "XSTest responses"),
    SuiteSet("hatecheck", "HateCheck"),
    SuiteSet("coconot", "CoCoNot (requests with safety concerns vs other non-compliance requests)"),
    SuiteSet("coconot_contrast", "CoCoNot contrast (benign look-alikes)", shown=("fpr",)),
    SuiteSet("diasafety_test", "DiaSafety test"),
    SuiteSet("convabuse_test", "ConvAbuse test"),
    SuiteSet("toxicchat_test", "ToxicChat (project test split)"),
    SuiteSet("multijail", "MultiJail", shown=("recall",), by=MULTIJAIL_LANGUAGES),  # every row unsafe
)
SUITES = {"public": SETS}  # --suite NAME

PUBLISHED_FIGURES = Path(__file__).with_name("experiments") / "published_figures.yaml"
FIGURE_METRICS = ("f1", "recall", "fpr", "auprc", "accuracy")
FIGURE_FIELDS = ("set", "guard", "metric", "value", "source", "note")  # note may be left out
PUBLISHED_TITLE = "Published figures of other guards (context; not measured here)"

BEGIN = "<!-- guard-sdk eval --suite public: BEGIN -->"
END = "<!-- guard-sdk eval --suite public: END -->"
CARD_HEADING = "## Public evaluation suite"


class PublishedFiguresError(InputError):
    """published_figures.yaml, or one of its entries, is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class PublishedFigure:
    """One figure another guard's paper or model card reports on a set of the suite."""

    set: str
    guard: str
    metric: str
    value: float
    source: str  # the citation: paper, table, URL
    note: str = ""


def load_sets(root: str | Path | None = None, sets: Sequence[SuiteSet] = SETS) -> tuple[Path, dict[str, Any]]:
    """The data folder and every set of the suite as a Dataset, read before anything is scored.

    A set that cannot be read (its files missing from the folder, no reader for it, unlabelled or empty rows) is
    not skipped: one DataError names the folder and every set at fault.
    """
    from guard_sdk.training.data import BUILTIN, DATA_DIR_ENV, DataError, data_dir, load_builtin

    folder = data_dir(root)
    loaded, problems = {}, []
    for s in sets:
        if s.source not in BUILTIN:
            problems.append(f"{s.source}: this guard-sdk has no reader for it (known: {', '.join(BUILTIN)})")
            continue
        try:
            ds = load_builtin(s.source, folder)
        except DataError as e:
            problems.append(str(e))
            continue
        unlabelled = sum(label is None for label in ds["label"])
        if len(ds) == 0 or unlabelled:
            problems.append(f"{s.source}: {'no rows' if len(ds) == 0 else f'{unlabelled} rows have no label'}")
            continue
        loaded[s.source] = ds
    if problems:
        raise DataError(f"{folder}: cannot read {len(problems)} of the {len(sets)} public evaluation sets; pass "
                        f"--data-dir (or set {DATA_DIR_ENV}) to a folder that holds them all (../shared/data/README.md "
                        "lists their files):\n  " + "\n  ".join(problems))
    return folder, loaded


def score_once(scorer: Scorer, prompts: Sequence[str], responses: Sequence[str | None]) -> np.ndarray:
    """P(unsafe) per row, each distinct (prompt, response) pair scored once."""
    pairs = list(zip(prompts, responses))
    distinct = list(dict.fromkeys(pairs))
    scores = np.asarray(scorer([p for p, _ in distinct], [r for _, r in distinct]), dtype=float)
    if scores.shape != (len(distinct),):
        raise ValueError(f"the scorer returned {scores.shape} scores for {len(distinct)} texts")
    at = {pair: i for i, pair in enumerate(distinct)}
    return scores[[at[pair] for pair in pairs]]


def score_suite(loaded: dict[str, Any], scorer: Scorer, threshold: float, sets: Sequence[SuiteSet] = SETS,
                ) -> list[dict[str, Any]]:
    """Each set's figures at ``threshold`` (unsafe when P(unsafe) >= threshold), in the order of ``sets``."""
    results = []
    for number, s in enumerate(sets, start=1):
        ds = loaded[s.source]
        distinct = len(set(zip(ds["prompt"], ds["response"])))
        log.info("[%d/%d] %s (%s): %d rows, %d distinct texts", number, len(sets), s.title, s.source, len(ds), distinct)
        labels, sources = np.asarray(ds["label"], dtype=int), np.asarray(ds["source"])
        scores = score_once(scorer, ds["prompt"], ds["response"])
        entry: dict[str, Any] = {"source": s.source, "title": s.title, "shown": list(s.shown), "rows": len(ds),
                                 "distinct_texts": distinct, "metrics": metrics(labels, scores, threshold)}
        thresholds = getattr(scorer, "thresholds", None)  # a bundle with categories: a report per category too
        if thresholds:
            kept = scorer.categories  # type: ignore[attr-defined]
            found = category_report(ds, [kept[(p, r)] for p, r in zip(ds["prompt"], ds["response"])], thresholds)
            if found is not None:
                entry["categories"] = found
        kinds = np.asarray([c or "" for c in ds["category"]]) if "category" in ds.column_names else None
        if kinds is not None and 1 < len(set(kinds)) <= MAX_KINDS:  # XSTest's types, HateCheck's functionalities
            entry["by_category"] = {k: metrics(labels[kinds == k], scores[kinds == k], threshold)
                                    for k in sorted(set(kinds)) if k}
        if s.by:
            keys = [str(x).partition(":")[2] if str(x).startswith(f"{s.source}:") else "" for x in sources]
            order = [k for k, _ in s.by] + sorted(set(keys) - {k for k, _ in s.by})
            names = dict(s.by)
            entry["by"] = {k: {"name": names.get(k, k or "(no sub-set)"),
                               **metrics(labels[[x == k for x in keys]], scores[[x == k for x in keys]], threshold)}
                           for k in order if k in keys}
        results.append(entry)
    return results


def run_suite(scorer: Scorer, threshold: float, guard: str, *, root: str | Path | None = None,
              sets: Sequence[SuiteSet] = SETS, published: Path | None = None) -> dict[str, Any]:
    """Load every set, score it and gather the published figures: the suite's result, as suite.json holds it."""
    published = PUBLISHED_FIGURES if published is None else published
    figures = published_figures(published, sets)  # a bad entry stops the run before the scoring, not after it
    folder, loaded = load_sets(root, sets)
    return {"guard": guard, "threshold": float(threshold), "data_dir": str(folder),
            "sets": score_suite(loaded, scorer, threshold, sets),
            "published": None if figures is None else [asdict(f) for f in figures],
            "published_file": str(published)}


def _known_sets(sets: Sequence[SuiteSet]) -> list[str]:
    return [name for s in sets for name in (s.source, *(f"{s.source}:{k}" for k, _ in s.by))]


def published_figures(path: Path = PUBLISHED_FIGURES, sets: Sequence[SuiteSet] = SETS) -> list[PublishedFigure] | None:
    """The checked entries of ``path`` (a YAML list of {set, guard, metric, value, source, note}); None if there is
    no such file. Entries count from 1 in the errors, which name the file and the entry at fault."""
    import yaml

    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise PublishedFiguresError(f"{path}: not valid YAML ({e})") from e
    if data is None:
        return []
    if not isinstance(data, list):
        raise PublishedFiguresError(f"{path}: must hold a list of entries {{{', '.join(FIGURE_FIELDS)}}}")
    known = _known_sets(sets)
    figures = []
    for number, entry in enumerate(data, start=1):
        where = f"{path}: entry {number} of {len(data)}"
        if not isinstance(entry, dict):
            raise PublishedFiguresError(f"{where}: must be a mapping with {', '.join(FIGURE_FIELDS)}")
        where += f" ({entry.get('guard')!r} on {entry.get('set')!r})"
        unknown = sorted(set(map(str, entry)) - set(FIGURE_FIELDS))
        missing = [k for k in FIGURE_FIELDS[:-1] if entry.get(k) in (None, "")]
        if unknown or missing:
            wrong = [f"unknown field(s) {', '.join(unknown)}"] * bool(unknown) + [
                f"missing {', '.join(missing)}"] * bool(missing)
            raise PublishedFiguresError(f"{where}: {'; '.join(wrong)}; the fields are {', '.join(FIGURE_FIELDS)} "
                                        "(note may be left out)")
        for name in ("set", "guard", "metric", "source", "note"):
            if not isinstance(entry.get(name, ""), str):
                raise PublishedFiguresError(f"{where}: {name} must be text, got {entry[name]!r}")
        if entry["set"] not in known:
            raise PublishedFiguresError(f"{where}: unknown set {entry['set']!r}; one of {', '.join(known)}")
        if entry["metric"] not in FIGURE_METRICS:
            raise PublishedFiguresError(f"{where}: unknown metric {entry['metric']!r}; one of "
                                        f"{', '.join(FIGURE_METRICS)}")
        value = entry["value"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not (
                0 <= value <= 1):
            raise PublishedFiguresError(f"{where}: value must be a number in [0, 1] (a percentage as a fraction: "
                                        f"85% is 0.85), got {value!r}")
        figures.append(PublishedFigure(entry["set"], entry["guard"], entry["metric"], float(value), entry["source"],
                                       entry.get("note") or ""))
    return figures


def _cell(value: float | int | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _text(value: str) -> str:
    """Text that stays inside one markdown table cell."""
    return " ".join(value.split()).replace("|", "\\|")


def to_markdown(result: dict[str, Any], sets: Sequence[SuiteSet] = SETS) -> str:
    """The suite's table (a row per set, and per sub-set), then the published figures of other guards."""
    head = "| set | rows | unsafe | " + " | ".join(COLUMNS.values()) + " |\n|---|" + "---|" * (2 + len(COLUMNS)) + "\n"
    lines = []
    for entry in result["sets"]:
        m, shown = entry["metrics"], entry["shown"]
        title = f"{entry['title']}: all" if entry.get("by") else entry["title"]
        lines.append(f"| {_text(title)} (`{entry['source']}`) | {m['n']} | {m['unsafe']} | "
                     + " | ".join(_cell(m[k]) if k in shown else "–" for k in COLUMNS) + " |")
        for key, sub in entry.get("by", {}).items():
            lines.append(f"| {_text(entry['title'])}: {key} ({_text(sub['name'])}) | {sub['n']} | "
                         f"{sub['unsafe']} | " + " | ".join(_cell(sub[k]) if k in shown else "–" for k in COLUMNS)
                         + " |")
    table = (f"#### Public evaluation suite: {result['guard']} (unsafe when P(unsafe) >= {result['threshold']:.4g})"
             "\n\n" + head + "\n".join(lines) + "\n\n"
             "Every set is scored at the one threshold above (`guard-sdk eval --suite public`, on the public sets of "
             "the shared data folder: ../shared/data/README.md). Recall is the share of unsafe rows flagged, FPR the "
             "share of safe rows flagged; \"–\" marks a figure the set cannot have (recall where every row is safe) "
             "or one that says nothing about it (F1 and AUPRC where every row is unsafe).\n")
    return table + "\n" + categories_markdown(result) + published_markdown(result, sets)


def categories_markdown(result: dict[str, Any]) -> str:
    """Per category, on every set whose rows carry categories the guard scores (none for a guard without them)."""
    rows = [(entry, name, m) for entry in result["sets"] for name, m in entry.get("categories", {}).get(
        "by_category", {}).items()]
    if not rows:
        return ""
    head = "| set | category | rows | of it | precision | recall | F1 | FPR |\n|---|---|---|---|---|---|---|---|\n"
    body = "".join(f"| {_text(e['title'])} (`{e['source']}`) | {name} | {m['n']} | {m['unsafe']} | "
                   f"{_cell(m['precision'])} | {_cell(m['recall'])} | {_cell(m['f1'])} | {_cell(m['fpr'])} |\n"
                   for e, name, m in rows)
    return ("**Per category** (each at its own threshold, over a set's rows whose categories are known: "
            "docs/taxonomy.md; \"of it\": the rows of that category)\n\n" + head + body + "\n")


def published_markdown(result: dict[str, Any], sets: Sequence[SuiteSet] = SETS) -> str:
    figures = result["published"]
    where = Path(result["published_file"]).name
    if not figures:
        why = "the file is absent" if figures is None else "the file lists none"
        return f"**{PUBLISHED_TITLE}**\n\nNone recorded ({where}: {why}).\n"
    titles = {s.source: s.title for s in sets} | {f"{s.source}:{k}": f"{s.title}: {k} ({name})"
                                                  for s in sets for k, name in s.by}
    head = "| guard | set | metric | value | source | note |\n|---|---|---|---|---|---|\n"
    body = "".join(f"| {_text(f['guard'])} | {_text(titles.get(f['set'], f['set']))} (`{f['set']}`) | "
                   f"{COLUMNS.get(f['metric'], f['metric'])} | {f['value']:.3f} | {_text(f['source'])} | "
                   f"{_text(f['note']) or '–'} |\n" for f in figures)
    return (f"**{PUBLISHED_TITLE}**\n\n{head}{body}\nFrom {where}: as each source reports them, on its own split, "
            "prompt format and threshold; set beside the table above for context only.\n")


def write_suite(result: dict[str, Any], out_dir: str | Path, sets: Sequence[SuiteSet] = SETS) -> tuple[Path, Path]:
    """suite.json and suite.md under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "suite.json", out / "suite.md"
    json_path.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    md_path.write_text(to_markdown(result, sets), encoding="utf-8")
    return json_path, md_path


def update_marked(path: str | Path, block: str, heading: str = "") -> Path:
    """The suite's ``block`` between its markers in ``path`` (guard_sdk.marked)."""
    return marked.update_marked(path, block, BEGIN, END, heading)


def update_model_card(bundle_dir: str | Path, markdown: str) -> Path:
    """The suite's tables in a bundle's MODEL_CARD.md, under CARD_HEADING. guard.json records no hash of the card
    (it covers the tokenizer and the artifacts), so the bundle still verifies after this."""
    from guard_sdk.export.model_card import CARD_NAME

    path = Path(bundle_dir) / CARD_NAME
    if not path.is_file():
        raise InputError(f"{path}: no model card in this bundle; export writes one (guard-sdk export), or use --docs")
    return update_marked(path, markdown, heading=CARD_HEADING)
