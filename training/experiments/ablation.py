"""HarmAug's ablation on our data, by one command: each row is a training recipe (plain fine-tuning or
distillation); rows not trained yet are trained (plain ones first, since a distillation row's teacher is one),
every model is scored in PyTorch on the same dev, test and holdout rows at its own dev-calibrated threshold,
and the table lands in the repo with the rows each model saw and the verdict on shipping the candidate.
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
from guard_sdk.training.recipe import Recipe, RecipeError, load_recipe, read_recipe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AblationRow:
    label: str  # the row's name in the table, e.g. "(b) + distillation"
    recipe: str  # a training recipe; its output_dir holds the model, its reports and its data splits


@dataclass(frozen=True)
class ShipRule:
    """The candidate replaces the embedded default when it beats ``against`` on dev F1 and dev AUPRC and
    raises the false-positive rate on ``fpr_source`` (a holdout source) by at most ``max_fpr_rise``."""

    candidate: str  # a row label
    against: str  # the row label of the model the embedded default was built from
    fpr_source: str
    max_fpr_rise: float


@dataclass(frozen=True)
class AblationRecipe:
    name: str
    table: str  # the markdown file the command writes
    rows: list[AblationRow]
    ship: ShipRule


def load_ablation(path: str | Path, overrides: Sequence[str] = ()) -> tuple[AblationRecipe, dict[str, Recipe]]:
    """The ablation (with ``--set`` overrides of its own fields) and each row's training recipe, checked: rows
    must share their data but for the train cap, so that every row is judged on the same dev, test and holdout
    rows."""
    ablation = read_recipe(path, AblationRecipe, overrides)
    labels = [r.label for r in ablation.rows]
    if len(set(labels)) != len(labels) or not labels:
        raise RecipeError(f"{path}: rows need distinct labels, and at least one row")
    for name in ("candidate", "against"):
        if getattr(ablation.ship, name) not in labels:
            raise RecipeError(f"{path}: ship.{name} must be one of the row labels: {', '.join(labels)}")
    recipes = {r.label: load_recipe(r.recipe) for r in ablation.rows}

    def judged_on(recipe: Recipe) -> dict[str, Any]:
        return {**asdict(recipe.data), "max_train_rows_per_source": None}

    first = judged_on(recipes[labels[0]])
    for label, recipe in recipes.items():
        if judged_on(recipe) != first:
            raise RecipeError(f"{path}: row {label!r} is judged on other data than row {labels[0]!r}; rows may "
                              "differ only in data.max_train_rows_per_source")
    holdout = [Path(s.data).stem for s in recipes[labels[0]].data.holdout]  # a file's rows are named by its stem
    if ablation.ship.fpr_source not in holdout:
        raise RecipeError(f"{path}: ship.fpr_source must be a holdout source of the rows: {', '.join(holdout)}")
    return ablation, recipes


def _trained(recipe: Recipe) -> dict[str, Any] | None:
    path = Path(recipe.output_dir) / "model" / TRAINING_RECORD
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _held_out_reports(recipe: Recipe, record: dict[str, Any], progress: bool) -> dict[str, dict[str, Any]]:
    """Test and holdout reports of a row's PyTorch model at its dev threshold, kept beside the model and
    reused until the model is retrained."""
    import datasets

    from guard_sdk.training.evaluate import checkpoint_scorer, levels_of, report, write_report

    out = Path(recipe.output_dir)
    splits = datasets.load_from_disk(str(out / "data"))
    reports, scorer = {}, None
    for name in ("test", "holdout"):
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
        "parameters": _parameters(Path(recipe.output_dir) / "model"),
        "train_rows": rows, "harmaug_rows": harmaug, "rows_seen": round(rows * recipe.train.epochs),
        "threshold": record["threshold"]["value"],
        "dev_f1": dev["f1"], "dev_auprc": dev["auprc"], "test_f1": test.get("f1"), "test_auprc": test.get("auprc"),
        **{f"fpr:{s}": holdout.get(s, {}).get("fpr") for s in fpr_sources},
    }


def ship_verdict(figures: dict[str, dict[str, Any]], rule: ShipRule) -> tuple[bool, str]:
    """Whether the candidate may replace the default, and why, in a sentence."""
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


def to_markdown(ablation: AblationRecipe, figures: dict[str, dict[str, Any]], fpr_sources: list[str],
                verdict: str, command: str) -> str:
    from guard_sdk.training.trainer import device_name

    columns = [("model", "model"), ("parameters", "params"), ("train_rows", "train rows"),
               ("harmaug_rows", "of them HarmAug"), ("rows_seen", "rows seen"), ("threshold", "threshold"),
               ("dev_f1", "dev F1"), ("dev_auprc", "dev AUPRC"), ("test_f1", "test F1"), ("test_auprc", "test AUPRC"),
               *[(f"fpr:{s}", f"FPR `{s}`") for s in fpr_sources]]
    head = "| row | " + " | ".join(c for _, c in columns) + " |\n|---|" + "---|" * len(columns) + "\n"
    body = ""
    for label, f in figures.items():
        cells = [f"`{f['model']}`" if key == "model" else _number(f[key]) for key, _ in columns]
        body += f"| {label} | " + " | ".join(cells) + " |\n"
    return (
        f"# Ablation: {ablation.name}\n\n"
        f"Written by `{command}` on {device_name()}; every figure below comes from that command.\n\n"
        "Each row is a model trained by the recipe named in the ablation file, scored in PyTorch on the same dev, "
        "test and holdout rows, unsafe at its own threshold (the dev cut with the best F1). \"rows seen\" is "
        "train rows × epochs (class-balanced sampling draws that many, with replacement). FPR is the share of a "
        "holdout source's safe rows flagged: `xstest` holds safe prompts that only sound harmful.\n\n"
        f"{head}{body}\n{verdict}\n"
    )


def run_ablation(path: str | Path, *, data_dir: str | None = None, overrides: Sequence[str] = (),
                 progress: bool = True) -> dict[str, Any]:
    """Train the rows that are missing, score them all, write the table; returns the figures and the verdict."""
    from guard_sdk.training.finetune import finetune

    ablation, recipes = load_ablation(path, overrides)
    order = sorted(ablation.rows, key=lambda r: recipes[r.label].distill is not None)  # teachers train first
    for row in order:
        recipe = recipes[row.label]
        if _trained(recipe) is None:
            log.info("%s: training %s ...", row.label, row.recipe)
            finetune(recipe, recipe_path=row.recipe, data_dir=data_dir, export=False, progress=progress)
    fpr_sources = [Path(s.data).stem for s in recipes[ablation.rows[0].label].data.holdout]
    figures = {}
    for row in ablation.rows:
        recipe = recipes[row.label]
        record = _trained(recipe)
        figures[row.label] = _row_figures(row.label, recipe, record, _held_out_reports(recipe, record, progress),
                                          fpr_sources)
    ship, verdict = ship_verdict(figures, ablation.ship)
    table = Path(ablation.table)
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text(to_markdown(ablation, figures, fpr_sources, verdict, f"guard-sdk ablation --recipe {path}"),
                     encoding="utf-8")
    return {"table": str(table), "rows": figures, "ship": ship, "verdict": verdict}
