"""DAPT's claim tested on our data, by one command (`guard-sdk dapt-experiment --recipe R`).

Each HarmBench semantic category named in the recipe is in turn the new rule. A base guard is trained on the
other categories' behaviours and safe instructions (the known rules), never seeing the rule. The adapter then
gets k rows of the rule (and k safe rows) drawn by seed, and learns them four ways: (a) full fine-tuning on the
examples only, (b) PEFT on the examples only, (c) augmentation + full fine-tuning, (d) DAPT, augmentation +
PEFT. Each is judged on the rule's held-out rows (beside the known rules' safe test rows, so that F1 and
AUPRC mean something) and on the known rules' test rows, before and after (forgetting). Every run's figures are
kept as JSON under the output folder, so a killed experiment resumes; the markdown table is written from them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import shutil
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from guard_sdk.training import data as D
from guard_sdk.training.dapt.adapt import Adapted, train_adapter
from guard_sdk.training.dapt.recipe import DaptExperimentRecipe
from guard_sdk.training.evaluate import metrics, score_torch
from guard_sdk.training.recipe import RecipeError, pin_record
from guard_sdk.training.shards import replace_dir, write_json
from guard_sdk.training.trainer import device_name, resolve_model, train_classifier

log = logging.getLogger(__name__)


RULE_SOURCE = "harmbench"


@dataclass(frozen=True)
class RuleData:
    """One rule's world: the known rules' splits, the rows examples are drawn from, and what is judged."""

    known: Any  # DatasetDict train (the base's training rows and the pool), dev (safe examples), test
    rule_rows: Any  # the rule's rows that examples are drawn from
    rule_eval: Any  # the rule's held-out rows and the known test split's safe rows
    old_eval: Any  # the known rules' test rows


@dataclass(frozen=True)
class Variant:
    row: str  # the table's row label
    method: str
    augmented: bool

    @property
    def slug(self) -> str:
        return f"{self.method}-{'aug' if self.augmented else 'plain'}"


def variants(peft_methods: list[str]) -> list[Variant]:
    return ([Variant("(a) full fine-tuning, examples", "full", False)]
            + [Variant(f"(b) {m}, examples", m, False) for m in peft_methods]
            + [Variant("(c) neighbours + full fine-tuning", "full", True)]
            + [Variant(f"(d) DAPT: neighbours + {m}", m, True) for m in peft_methods])


def check_rules(rules: Sequence[str], behaviours: Any) -> None:
    categories = sorted(set(behaviours["category"]))
    unknown = [r for r in rules if r not in categories]
    if unknown:
        raise RecipeError(f"rules: {unknown[0]!r} is not a HarmBench semantic category; known: "
                          f"{', '.join(categories)}")


def rule_data(recipe: DaptExperimentRecipe, rule: str, data_dir: str | None) -> RuleData:
    """The rows of one rule's experiment, the same for any run by the recipe's seed."""
    d = recipe.data
    root = data_dir or d.data_dir
    behaviours = D.load_builtin(RULE_SOURCE, root)
    check_rules([rule], behaviours)
    benign = D.load_builtin(d.benign, root)
    benign = benign.select([i for i, y in enumerate(benign["label"]) if y == 0])
    benign = benign.select(sorted(random.Random(d.seed).sample(range(len(benign)), min(d.benign_rows, len(benign)))))
    in_rule = np.asarray(behaviours["category"]) == rule
    known = D.make_splits(D.concat([behaviours.select(np.flatnonzero(~in_rule)), benign]), d.seed, d.splits)
    rule_rows = behaviours.select(np.flatnonzero(in_rule))
    shares = [d.rule_example_share, 1 - d.rule_example_share]
    part = np.asarray([D.split_of(g, d.seed, shares) for g in rule_rows["group"]])
    test = known["test"]
    safe_test = test.select([i for i, y in enumerate(test["label"]) if y == 0])
    return RuleData(known, rule_rows.select(np.flatnonzero(part == 0)),
                    D.concat([rule_rows.select(np.flatnonzero(part == 1)), safe_test]), test)


def draw_examples(data: RuleData, k: int, seed: int) -> Any:
    """k rows of the rule and k safe rows of the known dev split, drawn by (k, seed); fewer where there are fewer."""
    rng = random.Random(f"{seed}:{k}")
    dev = data.known["dev"]
    safe = [i for i, y in enumerate(dev["label"]) if y == 0]
    unsafe = data.rule_rows.select(sorted(rng.sample(range(len(data.rule_rows)), min(k, len(data.rule_rows)))))
    return D.concat([unsafe, dev.select(sorted(rng.sample(safe, min(k, len(safe)))))])


def _judge(model: Any, tokenizer: Any, encoder: Any, data: RuleData, threshold: float,
           batch_size: int) -> dict[str, Any]:
    out = {}
    for name, ds in (("rule", data.rule_eval), ("old", data.old_eval)):
        scores = score_torch(model, tokenizer, encoder, ds["prompt"], ds["response"], batch_size, False)
        out[name] = metrics(ds["label"], scores, threshold)
    return out


def base_guard(recipe: DaptExperimentRecipe, rule: str, data: RuleData, out: Path, progress: bool) -> dict[str, Any]:
    """Train (or reuse) the rule's base guard on the known rules; its figures before any adaptation."""
    from guard_sdk.export.checkpoint import bundle_encoder, load_checkpoint

    folder = out / rule / "base"
    figures = folder / "before.json"
    if figures.is_file():
        return json.loads(figures.read_text(encoding="utf-8"))
    if (folder / "model").is_dir():  # trained, killed before its figures were written
        model, tokenizer = load_checkpoint(folder / "model")
    else:
        log.info("%s: training the base guard on %d rows of the known rules ...", rule, len(data.known["train"]))
        model, tokenizer, _, _ = train_classifier(resolve_model(recipe.model), None, recipe.base_train,
                                                  data.known["train"], folder, progress)

        def save(path: str) -> None:
            model.save_pretrained(path)
            tokenizer.save_pretrained(path)

        replace_dir(folder / "model", save)
        shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    encoder = bundle_encoder(tokenizer, folder, recipe.adapt.train.max_length)
    before = _judge(model, tokenizer, encoder, data, recipe.adapt.threshold, recipe.adapt.train.eval_batch_size)
    write_json(figures, before)  # whole or absent: a rerun trusts it
    return before


def _runs(recipe: DaptExperimentRecipe) -> Iterator[tuple[int, int, Variant]]:
    for k in recipe.shots:
        for seed in recipe.seeds:
            for v in variants(recipe.peft_methods):
                yield k, seed, v


def run_one(recipe: DaptExperimentRecipe, data: RuleData, base: Path, k: int, seed: int, v: Variant,
            pool_vectors: np.ndarray, encoder: Any, work: Path) -> dict[str, Any]:
    """One adaptation and its figures."""
    a = recipe.adapt
    neighbours = dataclasses.replace(a.neighbours, k=a.neighbours.k if v.augmented else 0)
    adapt = dataclasses.replace(a, method=v.method, neighbours=neighbours,
                                train=dataclasses.replace(a.train, seed=seed))
    examples = draw_examples(data, k, seed)
    start = time.perf_counter()
    adapted: Adapted = train_adapter(str(base), examples, data.known["train"] if v.augmented else None, adapt, work,
                                     pool_vectors, encoder, progress=False)
    figures = _judge(adapted.model, adapted.tokenizer, adapted.encoder, data, a.threshold, a.train.eval_batch_size)
    return {"k": k, "seed": seed, "row": v.row, "method": v.method, "augmented": v.augmented,
            "examples": adapted.examples, "neighbours": adapted.neighbours, "trained_rows": len(adapted.train),
            "trainable_parameters": adapted.trainable_parameters, "seconds": time.perf_counter() - start, **figures}


def run_experiment(recipe: DaptExperimentRecipe, *, recipe_path: str | None = None, data_dir: str | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Every rule, k, seed and variant not yet run; then the table. Returns the per-rule summaries."""
    from tqdm import tqdm

    from guard_sdk.training.dapt.neighbours import embed, load_encoder

    out = Path(recipe.output_dir)
    check_rules(recipe.rules, D.load_builtin(RULE_SOURCE, data_dir or recipe.data.data_dir))  # every rule, before
    pin_record(out, {k: v for k, v in dataclasses.asdict(recipe).items()
                     if k not in ("table", "output_dir", "rules", "shots", "seeds")})
    encoder = load_encoder(recipe.adapt.neighbours.encoder)
    results: dict[str, dict[str, Any]] = {}
    for rule in recipe.rules:
        data = rule_data(recipe, rule, data_dir)
        before = base_guard(recipe, rule, data, out, progress)
        pool_vectors = embed(encoder, data.known["train"], recipe.adapt.neighbours.batch_size, False)
        runs: list[dict[str, Any]] = []
        todo = list(_runs(recipe))
        for k, seed, v in tqdm(todo, desc=rule, unit="run", disable=not progress):
            path = out / rule / "runs" / f"k{k}-s{seed}-{v.slug}.json"
            if not path.is_file():
                work = out / rule / "work"
                shutil.rmtree(work, ignore_errors=True)
                result = run_one(recipe, data, out / rule / "base" / "model", k, seed, v, pool_vectors, encoder, work)
                path.parent.mkdir(parents=True, exist_ok=True)
                write_json(path, result)  # whole or absent: a rerun counts the run as done
            runs.append(json.loads(path.read_text(encoding="utf-8")))
        shutil.rmtree(out / rule / "work", ignore_errors=True)
        results[rule] = {"before": before, "runs": runs, "rows": {
            "known_train": len(data.known["train"]), "rule_examples_from": len(data.rule_rows),
            "rule_eval": len(data.rule_eval), "rule_eval_unsafe": int(sum(data.rule_eval["label"])),
            "old_eval": len(data.old_eval)}}
    table = Path(recipe.table)
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text(to_markdown(recipe, results, recipe_path), encoding="utf-8")
    log.info("wrote %s", table)
    return {rule: summarize(r["runs"], recipe) for rule, r in results.items()}


def _mean_sd(values: list[float | None]) -> tuple[float, float] | None:
    got = [v for v in values if v is not None]
    if not got:
        return None
    return statistics.fmean(got), statistics.stdev(got) if len(got) > 1 else 0.0


def summarize(runs: list[dict[str, Any]], recipe: DaptExperimentRecipe) -> list[dict[str, Any]]:
    """Mean and spread over seeds per (k, row)."""
    rows = []
    for k in recipe.shots:
        for v in variants(recipe.peft_methods):
            mine = [r for r in runs if r["k"] == k and r["row"] == v.row]
            rows.append({"k": k, "row": v.row, "seeds": len(mine),
                         "examples": statistics.fmean(r["examples"] for r in mine),
                         "trained_rows": statistics.fmean(r["trained_rows"] for r in mine),
                         **{f"{part}_{m}": _mean_sd([r[part][m] for r in mine])
                            for part in ("rule", "old") for m in ("f1", "auprc")}})
    return rows


def _cell(value: tuple[float, float] | None) -> str:
    return "–" if value is None else f"{value[0]:.3f} ± {value[1]:.3f}"


def to_markdown(recipe: DaptExperimentRecipe, results: dict[str, dict[str, Any]], recipe_path: str | None) -> str:
    """The table file: how it was made, then per rule the figures before and after each way of adapting."""
    a = recipe.adapt
    lines = [
        f"# DAPT on our data: {recipe.name}",
        "",
        "Written by `guard-sdk dapt-experiment"
        + (f" --recipe {recipe_path}`" if recipe_path else "`")
        + f" on {device_name()}, {datetime.now(timezone.utc):%Y-%m-%d}. Do not edit by hand.",
        "",
        "Each HarmBench semantic category below is in turn the **new rule**. A base guard "
        f"(`{recipe.model}`, {recipe.base_train.epochs:g} epochs) is trained on the other categories' behaviours "
        f"and {recipe.data.benign_rows} safe `{recipe.data.benign}` instructions, never on the rule. Each adaptation "
        f"gets k of the rule's rows and k safe rows (drawn per seed from rows the base never saw) and trains "
        f"{a.train.epochs:g} epochs from the base. Neighbours: the {a.neighbours.k} nearest rows of the base's "
        f"training set per example at cosine >= {a.neighbours.min_similarity} (`{a.neighbours.encoder}`), "
        f"labelled by `{a.neighbours.label}`. Learning rates: full {a.train.learning_rate:g}, LoRA "
        f"{a.lora.learning_rate:g} (r {a.lora.r}), prompt tuning {a.prompt_tuning.learning_rate:g} "
        f"({a.prompt_tuning.virtual_tokens} virtual tokens). Threshold {a.threshold}.",
        "",
        "**rule** columns: the rule's held-out rows (never drawn as examples) with the known rules' safe test "
        "rows. **old** columns: the known rules' test rows, where a drop from *before* is forgetting. Mean ± "
        f"standard deviation over seeds {', '.join(map(str, recipe.seeds))}.",
        "",
    ]
    for rule, r in results.items():
        n, b = r["rows"], r["before"]
        lines += [
            f"## {rule}",
            "",
            f"Base trained on {n['known_train']} rows; examples drawn from {n['rule_examples_from']} rule rows; "
            f"rule judged on {n['rule_eval']} rows ({n['rule_eval_unsafe']} of the rule), old rules on "
            f"{n['old_eval']}. Before adaptation: rule F1 {b['rule']['f1'] or 0:.3f}, AUPRC "
            f"{b['rule']['auprc'] or 0:.3f}; old F1 {b['old']['f1'] or 0:.3f}, AUPRC {b['old']['auprc'] or 0:.3f}.",
            "",
            "| k | method | rows trained | rule F1 | rule AUPRC | old F1 | old AUPRC |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in summarize(r["runs"], recipe):
            lines.append(f"| {s['k']} | {s['row']} | {s['trained_rows']:.0f} | {_cell(s['rule_f1'])} | "
                         f"{_cell(s['rule_auprc'])} | {_cell(s['old_f1'])} | {_cell(s['old_auprc'])} |")
        lines.append("")
    return "\n".join(lines)
