"""HarmAug's ablation on our data, by one command: each row is a training recipe (plain fine-tuning or
distillation); rows not trained yet are trained (plain ones first, since a distillation row's teacher is one),
every model is scored in PyTorch at its own dev-calibrated threshold, and the table lands in the repo with the
rows each model saw and the verdict on shipping the candidate.

What the rows are judged on decides what data they may differ in:

- without ``suite`` (ablation-offline.yaml), the judge is each row's own dev, test and holdout splits, so the rows
  must share their data (all but the train cap) and are refused otherwise: their splits are then the same rows.
  The candidate ships when it beats ``against`` on dev F1 and dev AUPRC and over-blocks ``fpr_source`` at most
  ``max_fpr_rise`` more.
- with ``suite`` (ablation-broad.yaml: ``public``), the judge is every set of that public evaluation suite
  (public_suite.py), the same rows for every model, so rows may train on different data (the seed-only row beside
  the broad ones). Their dev and test figures are still shown, but when the rows' data differ they come from
  different splits: the table then counts each row's training sources and says so, and the shipping rule reads
  the suite only: a higher mean F1, no set's F1 down by more than ``max_f1_loss`` and no set's FPR up by more than
  ``max_fpr_rise``. The holdout splits are not scored (their sets are the suite's). A row may then also be a
  shipped bundle (``bundle: default``: the embedded guard, as users run it), scored through the runtime at its own
  threshold, and ``ship.dev_split`` names the recipe whose dev split no source may lose more than ``max_f1_loss``
  of F1 on (the embedded default's own dev split: the broad data must not cost what the old default did well).

A row's test, holdout and suite results are kept beside its model and reused until the model is retrained.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from guard_sdk.export.checkpoint import TRAINING_RECORD
from guard_sdk.guard import DEFAULT_BUNDLE_NAME
from guard_sdk.training.recipe import Recipe, RecipeError, load_recipe, read_recipe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AblationRow:
    label: str  # the row's name in the table, e.g. "(b) + distillation"
    recipe: str | None  # a training recipe; its output_dir holds the model, its reports and its data splits
    bundle: str | None  # or, with a suite, a guard bundle scored as shipped (`default`: the embedded guard)


@dataclass(frozen=True)
class ShipRule:
    """When the candidate replaces the embedded default (the module's docstring gives both rules). Without a suite:
    it beats ``against`` on dev F1 and dev AUPRC and raises the false-positive rate on ``fpr_source`` (a holdout
    source) by at most ``max_fpr_rise``. With one: its mean F1 over the suite's sets beats ``against``'s, no set's
    F1 drops by more than ``max_f1_loss`` and no set's FPR rises by more than ``max_fpr_rise``; with ``dev_split``
    too, no source of that recipe's dev split loses more than ``max_f1_loss`` of F1 (FPR: ``max_fpr_rise``, for a
    source of safe rows only)."""

    candidate: str  # a row label
    against: str  # the row label of the model the embedded default was built from
    fpr_source: str | None  # without a suite: a holdout source; with one: null (every set's FPR is checked)
    max_fpr_rise: float
    max_f1_loss: float | None  # with a suite: the largest F1 drop allowed on any of its sets; without one: null
    dev_split: str | None  # with a suite: a training recipe whose dev split is checked per source too, or null


@dataclass(frozen=True)
class AblationRecipe:
    name: str
    table: str  # the markdown file the command writes
    suite: str | None  # a public evaluation suite every row is also scored on (guard-sdk eval --suite), or null
    rows: list[AblationRow]
    ship: ShipRule


def _judged_on(recipe: Recipe) -> dict[str, Any]:
    """What decides a row's dev, test and holdout rows: its data section but for the train cap."""
    return {**asdict(recipe.data), "max_train_rows_per_source": None}


def _missing_augmented(recipe: Recipe) -> list[str]:
    """The HarmAug folders of a distillation recipe whose labelling has not finished (yet)."""
    from guard_sdk.training.harmaug.run import labels_finished

    augmented = recipe.distill.augmented if recipe.distill is not None else []
    return [folder for folder in augmented if not labels_finished(folder)]


def _row_recipe(path: str) -> Recipe:
    """A row's training recipe, checked, but for HarmAug folders that do not exist yet: they are build outputs, and
    a row whose model is trained needs them no more (``run_ablation`` refuses to train a row without them)."""
    recipe = read_recipe(path, Recipe)
    if not _missing_augmented(recipe):
        return load_recipe(path)
    load_recipe(path, ["distill.augmented=[]"])  # every other check
    return recipe


def load_ablation(path: str | Path, overrides: Sequence[str] = ()) -> tuple[AblationRecipe, dict[str, Recipe]]:
    """The ablation (with ``--set`` overrides of its own fields) and each row's training recipe, checked. Without a
    suite, rows must share their data but for the train cap, so that every row is judged on the same dev, test and
    holdout rows; with one, every row is judged on the suite's sets and may train on other data."""
    from guard_sdk.training.public_suite import SUITES

    ablation = read_recipe(path, AblationRecipe, overrides)
    labels = [r.label for r in ablation.rows]
    if len(set(labels)) != len(labels) or not labels:
        raise RecipeError(f"{path}: rows need distinct labels, and at least one row")
    ship = ablation.ship
    for row in ablation.rows:
        if (row.recipe is None) == (row.bundle is None):
            raise RecipeError(f"{path}: row {row.label!r} names a recipe or a bundle (one of the two; null the other)")
        if row.bundle is not None and ablation.suite is None:
            raise RecipeError(f"{path}: row {row.label!r} is a bundle, which has no dev or test split of its own; "
                              "a bundle row needs a suite to be judged on")
    if ship.dev_split is not None and ablation.suite is None:
        raise RecipeError(f"{path}: ship.dev_split applies with a suite; without one, rows share their dev split")
    for name in ("candidate", "against"):
        if getattr(ship, name) not in labels:
            raise RecipeError(f"{path}: ship.{name} must be one of the row labels: {', '.join(labels)}")
    if ship.max_fpr_rise < 0 or (ship.max_f1_loss or 0) < 0:
        raise RecipeError(f"{path}: ship.max_fpr_rise and ship.max_f1_loss must be 0 or more")
    if ablation.suite is not None:
        if ablation.suite not in SUITES:
            raise RecipeError(f"{path}: suite must be one of {', '.join(SUITES)}, or null; got {ablation.suite!r}")
        if ship.max_f1_loss is None or ship.fpr_source is not None:
            raise RecipeError(f"{path}: with a suite, ship.max_f1_loss is the largest F1 drop allowed on any of its "
                              "sets and ship.fpr_source is null (every set's FPR is checked)")
    elif ship.max_f1_loss is not None or ship.fpr_source is None:
        raise RecipeError(f"{path}: without a suite, ship.fpr_source names a holdout source and ship.max_f1_loss is "
                          "null (it applies to a suite's sets)")
    recipes = {r.label: _row_recipe(r.recipe) for r in ablation.rows if r.recipe is not None}
    if ship.dev_split is not None:
        load_recipe(ship.dev_split)
    if ablation.suite is None:
        first = _judged_on(recipes[labels[0]])
        for label, recipe in recipes.items():
            if _judged_on(recipe) != first:
                raise RecipeError(f"{path}: row {label!r} is judged on other data than row {labels[0]!r}; rows may "
                                  "differ only in data.max_train_rows_per_source (or in all their data when the "
                                  "ablation names a suite to judge them on)")
        holdout = [Path(s.data).stem for s in recipes[labels[0]].data.holdout]  # a file's rows are named by its stem
        if ship.fpr_source not in holdout:
            raise RecipeError(f"{path}: ship.fpr_source must be a holdout source of the rows: {', '.join(holdout)}")
    return ablation, recipes


def _trained(recipe: Recipe) -> dict[str, Any] | None:
    path = Path(recipe.output_dir) / "model" / TRAINING_RECORD
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _held_out_reports(recipe: Recipe, record: dict[str, Any], progress: bool,
                      names: Sequence[str] = ("test", "holdout")) -> dict[str, dict[str, Any]]:
    """The reports of a row's PyTorch model at its dev threshold on the splits ``names``, kept beside the model and
    reused until the model is retrained."""
    import datasets

    from guard_sdk.training.evaluate import checkpoint_scorer, levels_of, report, write_report

    out = Path(recipe.output_dir)
    splits = datasets.load_from_disk(str(out / "data"))
    reports, scorer = {}, None
    for name in names:
        path = out / f"eval_{name}_pytorch.json"
        if path.is_file():
            kept = json.loads(path.read_text(encoding="utf-8"))
            if kept.get("model_finished") == record["finished"]:
                reports[name] = kept
                continue
        if name not in splits:
            continue
        ds = splits[name]
        log.info("%s: scoring %s (%d rows) ...", recipe.name, name, len(ds))
        scorer = scorer or checkpoint_scorer(out / "model", recipe.train.max_length, recipe.train.eval_batch_size,
                                             progress)
        result = report(ds["label"], scorer(ds["prompt"], ds["response"]), ds["source"], levels_of(ds),
                        record["threshold"]["value"])
        reports[name] = {**result, "model_finished": record["finished"]}
        write_report(reports[name], out, f"eval_{name}_pytorch", f"{name}, PyTorch model")
    return reports


SUITE_REPORT = "eval_suite_pytorch.json"  # a row's suite result, beside its model


def _suite_report(recipe: Recipe, record: dict[str, Any], suite: str, data_dir: str | None,
                  loaded: dict[str, Any], progress: bool) -> dict[str, Any]:
    """Every set of the suite scored by a row's PyTorch model at its dev threshold (suite.json's figures), kept
    beside the model and reused until the model is retrained, or the suite's sets or data folder change.
    ``loaded``: the suite's sets, read on the first row that needs them and shared by the others."""
    from guard_sdk.training import public_suite
    from guard_sdk.training.data import data_dir as shared_data
    from guard_sdk.training.evaluate import checkpoint_scorer
    from guard_sdk.training.shards import write_json

    sets = public_suite.SUITES[suite]
    out = Path(recipe.output_dir)
    folder = shared_data(data_dir)
    key = {"model_finished": record["finished"], "suite": suite, "data_dir": str(folder.resolve())}
    path = out / SUITE_REPORT
    if path.is_file():
        kept = json.loads(path.read_text(encoding="utf-8"))
        if {k: kept.get(k) for k in key} == key and [e["source"] for e in kept["sets"]] == [s.source for s in sets]:
            return kept
    log.info("%s: scoring the %s suite (%d sets) ...", recipe.name, suite, len(sets))
    scorer = checkpoint_scorer(out / "model", recipe.train.max_length, recipe.train.eval_batch_size, progress)
    threshold = float(record["threshold"]["value"])
    result = {"guard": f"{recipe.name} ({out / 'model'}, PyTorch)", "threshold": threshold, **key,
              "sets": public_suite.score_suite(_suite_sets(suite, folder, loaded), scorer, threshold, sets)}
    write_json(path, result)
    return result


def _suite_sets(suite: str, folder: Path, loaded: dict[str, Any]) -> dict[str, Any]:
    """The suite's sets, read on the first call and shared by the rows after it."""
    from guard_sdk.training import public_suite

    if not loaded:
        loaded.update(public_suite.load_sets(folder, public_suite.SUITES[suite])[1])  # or one error naming all
    return loaded


def _load_bundle(bundle: str) -> Any:
    from guard_sdk.guard import Guard

    return Guard.load(None if bundle == DEFAULT_BUNDLE_NAME else bundle)


def _bundle_row(label: str, bundle: str, suite: str, data_dir: str | None, loaded: dict[str, Any],
                progress: bool) -> dict[str, Any]:
    """A shipped bundle's row: scored through the runtime at its own threshold on the suite; it has no training
    figures (dev and test belong to the data it was trained on), so those cells stay empty."""
    from guard_sdk.training import public_suite
    from guard_sdk.training.data import data_dir as shared_data
    from guard_sdk.training.evaluate import guard_scorer

    guard = _load_bundle(bundle)
    log.info("%s: scoring the %s suite through the runtime (%s) ...", label, suite, guard.backend.name)
    sets = public_suite.score_suite(_suite_sets(suite, shared_data(data_dir), loaded), guard_scorer(guard, progress),
                                    guard.threshold, public_suite.SUITES[suite])
    empty = dict.fromkeys(("parameters", "sources", "train_rows", "harmaug_rows", "rows_seen", "dev_f1", "dev_auprc",
                           "test_f1", "test_auprc"))
    artifact = Path(guard.artifact.path).name
    return {"label": label, "recipe": None, "model": f"{bundle} ({guard.manifest.name}, {artifact})", **empty,
            "threshold": guard.threshold, "suite": _suite_figures({"sets": sets}, suite)}


def _row_scorer(label: str, recipes: dict[str, Recipe], rows: Sequence[AblationRow], progress: bool,
                ) -> tuple[Any, float]:
    """(scorer, threshold) of a row: its trained model in PyTorch at its dev threshold, or its bundle as shipped."""
    from guard_sdk.training.evaluate import checkpoint_scorer, guard_scorer

    if label not in recipes:
        guard = _load_bundle(next(r.bundle for r in rows if r.label == label))
        return guard_scorer(guard, progress), guard.threshold
    recipe = recipes[label]
    return (checkpoint_scorer(Path(recipe.output_dir) / "model", recipe.train.max_length,
                              recipe.train.eval_batch_size, progress), float(_trained(recipe)["threshold"]["value"]))


def _dev_split_sources(recipe_path: str, scorers: dict[str, tuple[Any, float]], data_dir: str | None,
                       ) -> dict[str, dict[str, Any]]:
    """Per source of ``recipe_path``'s dev split, each scorer's figures at its threshold: {label: {source: ...}}."""
    from guard_sdk.training.evaluate import levels_of, report
    from guard_sdk.training.finetune import build_splits

    dev = build_splits(load_recipe(recipe_path).data, data_dir)[0]["dev"]
    log.info("scoring the dev split of %s (%d rows) ...", recipe_path, len(dev))
    return {label: report(dev["label"], scorer(dev["prompt"], dev["response"]), dev["source"], levels_of(dev),
                          threshold)["by_source"] for label, (scorer, threshold) in scorers.items()}


def _headline(s: Any) -> str:
    """A suite set's figure in the table: F1 where it holds both labels, else the one figure it shows (FPR where
    every row is safe, recall where every row is unsafe)."""
    return "f1" if "f1" in s.shown else str(s.shown[0])


def _suite_figures(result: dict[str, Any], suite: str) -> dict[str, Any]:
    """Each set's headline figure, F1 and FPR, and the mean F1 over the sets whose headline is F1. A set with unsafe
    rows of which the model flags none right has an F1 of 0 (metrics leaves it undefined)."""
    from guard_sdk.training.public_suite import SUITES

    by_source = {e["source"]: e["metrics"] for e in result["sets"]}
    cells = {}
    for s in SUITES[suite]:
        m, shown = by_source[s.source], _headline(s)
        f1 = (0.0 if m["f1"] is None and m["unsafe"] else m["f1"]) if shown == "f1" else None
        cells[s.source] = {"shown": shown, "f1": f1, "fpr": m["fpr"], "recall": m["recall"]}
    f1s = [c["f1"] for c in cells.values() if c["f1"] is not None]
    return {"sets": cells, "mean_f1": sum(f1s) / len(f1s) if f1s else None}


def _parameters(model_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for file in model_dir.glob("*.safetensors"):
        with safe_open(str(file), "np") as f:
            for key in f.keys():
                shape = f.get_slice(key).get_shape()
                total += math.prod(shape)
    return total


def _row_figures(label: str, recipe: Recipe, record: dict[str, Any], reports: dict[str, Any],
                 fpr_sources: list[str]) -> dict[str, Any]:
    train = record["data"]["train"]
    rows = sum(sum(counts.values()) for counts in train.values())
    harmaug = sum(sum(c.values()) for src, c in train.items() if src.startswith("harmaug:"))
    dev, test, holdout = record["dev_pytorch"]["overall"], reports.get("test", {}).get("overall", {}), reports.get(
        "holdout", {}).get("by_source", {})
    return {
        "label": label, "recipe": recipe.name, "model": recipe.model,
        "parameters": _parameters(Path(recipe.output_dir) / "model"), "sources": len(recipe.data.sources),
        "train_rows": rows, "harmaug_rows": harmaug, "rows_seen": round(rows * recipe.train.epochs),
        "threshold": record["threshold"]["value"],
        "dev_f1": dev["f1"], "dev_auprc": dev["auprc"], "test_f1": test.get("f1"), "test_auprc": test.get("auprc"),
        **{f"fpr:{s}": holdout.get(s, {}).get("fpr") for s in fpr_sources},
    }


def _points(value: float) -> str:
    return f"{100 * value:g} point{'' if value == 0.01 else 's'}"


def _change_checks(candidate: dict[str, dict[str, Any]], against: dict[str, dict[str, Any]], rule: ShipRule,
                   names: Sequence[str], prefix: str = "") -> list[tuple[bool, str]]:
    """One check per figure in ``names`` that both sides have, per source: F1 down by at most max_f1_loss, FPR up
    by at most max_fpr_rise."""
    limits = {"f1": (rule.max_f1_loss, -1), "fpr": (rule.max_fpr_rise, 1)}
    checks = []
    for source, cs in candidate.items():
        s = against.get(source, {})
        for name in names:
            if cs.get(name) is None or s.get(name) is None:
                continue
            limit, worse = limits[name]
            change = cs[name] - s[name]
            checks.append((worse * change <= (limit or 0) + 1e-9, f"{prefix}`{source}` {name.upper()} {cs[name]:.3f} "
                           f"vs {s[name]:.3f} ({100 * change:+.1f} points)"))
    return checks


def _suite_verdict(figures: dict[str, dict[str, Any]], rule: ShipRule) -> tuple[bool, str]:
    c, a = figures[rule.candidate]["suite"], figures[rule.against]["suite"]
    checks = [(c["mean_f1"] is not None and a["mean_f1"] is not None and c["mean_f1"] > a["mean_f1"],
               f"mean F1 {_number(c['mean_f1'])} vs {_number(a['mean_f1'])}")]
    checks += _change_checks(c["sets"], a["sets"], rule, ("f1", "fpr"))
    dev = ""
    if rule.dev_split is not None:  # F1 per source; FPR where a source holds safe rows only (it has no F1)
        cd, ad = figures[rule.candidate]["dev_split"], figures[rule.against]["dev_split"]
        safe_only = {k: v for k, v in cd.items() if not v["unsafe"]}
        checks += _change_checks(cd, ad, rule, ("f1",), "dev split ") + _change_checks(
            safe_only, ad, rule, ("fpr",), "dev split ")
        dev = f", and the same per source of the dev split of {rule.dev_split}"
    ship = all(ok for ok, _ in checks)
    said = "; ".join(f"{text} {'✓' if ok else '✗'}" for ok, text in checks)
    verb = "beats" if ship else "does not beat"
    return ship, (f"**{rule.candidate}** {verb} **{rule.against}** by the shipping rule on the evaluation suite (a "
                  f"higher mean F1, no set's F1 down by more than {_points(rule.max_f1_loss or 0)}, no set's FPR up "
                  f"by more than {_points(rule.max_fpr_rise)}{dev}): {said}.")


def ship_verdict(figures: dict[str, dict[str, Any]], rule: ShipRule) -> tuple[bool, str]:
    """Whether the candidate may replace the default, and why, in a sentence: each check, passed (✓) or not (✗)."""
    if rule.max_f1_loss is not None:
        return _suite_verdict(figures, rule)
    c, a = figures[rule.candidate], figures[rule.against]
    key = f"fpr:{rule.fpr_source}"
    rise = (c[key] or 0) - (a[key] or 0)
    limit = f"at most {100 * rule.max_fpr_rise:.0f}"
    checks = [(c["dev_f1"] > a["dev_f1"], f"dev F1 {c['dev_f1']:.3f} vs {a['dev_f1']:.3f}"),
              (c["dev_auprc"] > a["dev_auprc"], f"dev AUPRC {c['dev_auprc']:.3f} vs {a['dev_auprc']:.3f}"),
              (rise <= rule.max_fpr_rise,
               f"{rule.fpr_source} FPR {c[key]:.3f} vs {a[key]:.3f} (a rise of {100 * rise:+.1f} points; {limit})")]
    ship = all(ok for ok, _ in checks)
    said = "; ".join(f"{text} {'✓' if ok else '✗'}" for ok, text in checks)
    verb = "beats" if ship else "does not beat"
    return ship, f"**{rule.candidate}** {verb} **{rule.against}** by the shipping rule: {said}."


def _number(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:,}" if isinstance(value, int) else f"{value:.3f}"


def _suite_markdown(suite: str, figures: dict[str, dict[str, Any]]) -> str:
    """One row per ablation row, one column per set of the suite (its headline figure), then the mean F1."""
    from guard_sdk.training.public_suite import COLUMNS, SUITES

    sets = SUITES[suite]
    columns = [f"`{s.source}` {COLUMNS[_headline(s)]}" for s in sets] + ["mean F1"]
    head = "| row | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns) + "\n"
    body = ""
    for label, f in figures.items():
        cells = [_number(f["suite"]["sets"][s.source][_headline(s)]) for s in sets] + [_number(f["suite"]["mean_f1"])]
        body += f"| {label} | " + " | ".join(cells) + " |\n"
    by_kind = {kind: ", ".join(f"`{s.source}`" for s in sets if _headline(s) == kind) for kind in ("fpr", "recall")}
    others = "".join(f", {what} where every row is {rows} ({by_kind[kind]})" for kind, what, rows in (
        ("fpr", "FPR (the share of safe rows flagged)", "safe"), ("recall", "recall", "unsafe")) if by_kind[kind])
    with_f1 = sum(_headline(s) == "f1" for s in sets)
    return (
        f"## Public evaluation suite\n\n"
        f"Every row's model scored in PyTorch on every set of `guard-sdk eval --suite {suite}` (the public evaluation "
        "sets of the shared data folder), unsafe at the row's own threshold as above. Each set shows one figure: F1 "
        f"where it holds safe and unsafe rows{others}. \"mean F1\" averages the {with_f1} set{'s' * (with_f1 != 1)} "
        "with F1 (a set where a model flags none of the unsafe rows right counts 0). Every figure of every set, "
        f"sub-sets included, is in the row's `{SUITE_REPORT}`, beside its model.\n\n{head}{body}"
    )


def _dev_split_markdown(rule: ShipRule, figures: dict[str, dict[str, Any]]) -> str:
    """The two shipping rows side by side on each source of the dev split that ``rule.dev_split`` names."""
    c, a = figures[rule.candidate]["dev_split"], figures[rule.against]["dev_split"]
    body = "".join(f"| `{source}` | {m['n']:,} | {m['unsafe']:,} | {_number(a[source]['f1'])} | "
                   f"{_number(m['f1'])} | {_number(a[source]['fpr'])} | {_number(m['fpr'])} |\n"
                   for source, m in c.items())
    return (f"## The old default's dev split\n\nEvery source of the dev split of `{rule.dev_split}` (what the old "
            "default trained and was calibrated for), each model at its own threshold.\n\n"
            f"| source | rows | unsafe | F1 {rule.against} | F1 {rule.candidate} | FPR {rule.against} | "
            f"FPR {rule.candidate} |\n|---|---|---|---|---|---|---|\n{body}")


def to_markdown(ablation: AblationRecipe, figures: dict[str, dict[str, Any]], fpr_sources: list[str],
                verdict: str, command: str, same_data: bool = True) -> str:
    """The rows' table, the suite's table when the ablation names one, then the verdict. ``same_data``: whether
    every row has the same dev and test rows; when not, a column counts each row's training sources."""
    from guard_sdk.training.trainer import device_name

    columns = [("model", "model"), ("parameters", "params"), *[("sources", "sources")] * (not same_data),
               ("train_rows", "train rows"), ("harmaug_rows", "of them HarmAug"), ("rows_seen", "rows seen"),
               ("threshold", "threshold"), ("dev_f1", "dev F1"), ("dev_auprc", "dev AUPRC"), ("test_f1", "test F1"),
               ("test_auprc", "test AUPRC"), *[(f"fpr:{s}", f"FPR `{s}`") for s in fpr_sources]]
    head = "| row | " + " | ".join(c for _, c in columns) + " |\n|---|" + "---|" * len(columns) + "\n"
    body = ""
    for label, f in figures.items():
        cells = [f"`{f['model']}`" if key == "model" else _number(f[key]) for key, _ in columns]
        body += f"| {label} | " + " | ".join(cells) + " |\n"
    if same_data:
        splits = "dev, test and holdout" if fpr_sources else "dev and test"
        judged = (f"scored in PyTorch on the same {splits} rows, unsafe at its own threshold (the dev cut with the "
                  "best F1). ")
    else:
        judged = ("unsafe at its own threshold (calibrated on its own dev split). The rows train on different data "
                  "(\"sources\": how many training sources its recipe names), so dev and test are each row's own "
                  "splits: those figures describe each row, are not comparable across rows, and the shipping rule "
                  "does not use them. ")
    held = ("FPR is the share of a holdout source's safe rows flagged: `xstest` holds safe prompts that only sound "
            "harmful.") if fpr_sources else ""
    if any(f["recipe"] is None for f in figures.values()):
        held += (" A row without a recipe is a shipped bundle, scored as users run it (through the runtime, its "
                 "own artifact and threshold) on the suite; it has no training figures.")
    suite = "" if ablation.suite is None else _suite_markdown(ablation.suite, figures) + "\n"
    if ablation.ship.dev_split is not None:
        suite += _dev_split_markdown(ablation.ship, figures) + "\n"
    return (
        f"# Ablation: {ablation.name}\n\n"
        f"Written by `{command}` on {device_name()}; every figure below comes from that command.\n\n"
        f"Each row is a model trained by the recipe named in the ablation file, {judged}\"rows seen\" is "
        "train rows × epochs (class-balanced sampling draws that many, with replacement). "
        f"{held}".rstrip() + f"\n\n{head}{body}\n{suite}{verdict}\n"
    )


def run_ablation(path: str | Path, *, data_dir: str | None = None, overrides: Sequence[str] = (),
                 progress: bool = True) -> dict[str, Any]:
    """Train the rows that are missing, score them all, write the table; returns the figures and the verdict."""
    from guard_sdk.training.finetune import finetune

    ablation, recipes = load_ablation(path, overrides)
    trained_rows = [row for row in ablation.rows if row.recipe is not None]
    order = sorted(trained_rows, key=lambda r: recipes[r.label].distill is not None)  # teachers train first
    to_train = [row for row in order if _trained(recipes[row.label]) is None]
    for row in to_train:  # refused before anything trains
        missing = _missing_augmented(recipes[row.label])
        if missing:
            raise RecipeError(f"{path}: row {row.label!r} has no trained model, and its recipe {row.recipe} cannot "
                              f"train yet: distill.augmented: {', '.join(missing)} is not labelled, or its "
                              "labelling did not finish; run `guard-sdk augment label` on it (it resumes)")
    for row in to_train:
        log.info("%s: training %s ...", row.label, row.recipe)
        recipe = recipes[row.label]
        finetune(recipe, recipe_path=row.recipe, data_dir=data_dir, export=False, progress=progress)
    same_data = len(recipes) == len(ablation.rows) and len({repr(_judged_on(r)) for r in recipes.values()}) == 1
    held_out = ("test",) if ablation.suite else ("test", "holdout")  # with a suite, the suite's sets are the holdout
    fpr_sources = [] if ablation.suite else [Path(s.data).stem for s in recipes[ablation.rows[0].label].data.holdout]
    figures: dict[str, dict[str, Any]] = {}
    loaded: dict[str, Any] = {}  # the suite's sets, read once
    for row in ablation.rows:
        if row.bundle is not None:
            figures[row.label] = _bundle_row(row.label, row.bundle, ablation.suite, data_dir, loaded, progress)
            continue
        recipe = recipes[row.label]
        record = _trained(recipe)
        figures[row.label] = _row_figures(row.label, recipe, record,
                                          _held_out_reports(recipe, record, progress, held_out), fpr_sources)
        if ablation.suite:
            result = _suite_report(recipe, record, ablation.suite, data_dir, loaded, progress)
            figures[row.label]["suite"] = _suite_figures(result, ablation.suite)
    rule = ablation.ship
    if rule.dev_split is not None:
        sides = (rule.against, rule.candidate)
        scorers = {label: _row_scorer(label, recipes, ablation.rows, progress) for label in sides}
        for label, by_source in _dev_split_sources(rule.dev_split, scorers, data_dir).items():
            figures[label]["dev_split"] = by_source
    ship, verdict = ship_verdict(figures, rule)
    table = Path(ablation.table)
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text(to_markdown(ablation, figures, fpr_sources, verdict, f"guard-sdk ablation --recipe {path}",
                                 same_data), encoding="utf-8")
    return {"table": str(table), "rows": figures, "ship": ship, "verdict": verdict}
