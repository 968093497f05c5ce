"""The DAPT experiment: its rows never leak between the base guard, the examples and what is judged; a tiny run
writes the table from per-run records and resumes without retraining."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guard_sdk.training import data as D
from guard_sdk.training.dapt.recipe import load_experiment
from guard_sdk.training.recipe import RecipeError
from tests.conftest import SHARED_DATA

RECIPE = str(Path(__file__).resolve().parents[1] / "training" / "recipes" / "dapt-harmbench.yaml")
pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")


def tiny(tmp_path, base, *more: str):
    return load_experiment(RECIPE, [
        f"model={base}", f"output_dir={tmp_path / 'out'}", f"table={tmp_path / 'dapt.md'}", "rules=[harmful]",
        "shots=[2]", "seeds=[0]", "data.benign_rows=40", "base_train.epochs=1", "base_train.max_length=32",
        "adapt.train.epochs=1", "adapt.train.max_length=32", "adapt.prompt_tuning.virtual_tokens=4", *more])


def test_rule_rows_stay_out_of_the_base_and_examples_out_of_the_judged_rows(tmp_path):
    from guard_sdk.training.experiments.dapt import draw_examples, rule_data

    recipe = tiny(tmp_path, "unused")
    data = rule_data(recipe, "cybercrime_intrusion", str(SHARED_DATA))
    assert set(data.rule_rows["category"]) == {"cybercrime_intrusion"}
    for split in ("train", "dev", "test"):
        assert "cybercrime_intrusion" not in set(data.known[split]["category"])
    rule_judged = data.rule_eval.select([i for i, y in enumerate(data.rule_eval["label"]) if y == 1])
    assert set(rule_judged["category"]) == {"cybercrime_intrusion"}
    assert D.overlap(rule_judged, data.rule_rows) == 0
    assert len(data.rule_rows) + len(rule_judged) == 67  # every HarmBench row of the category, once
    assert D.overlap(data.known["test"], data.known["train"]) == 0
    examples = draw_examples(data, 4, seed=1)
    assert examples["label"] == [1] * 4 + [0] * 4
    assert D.overlap(examples, data.known["train"]) == 0 and D.overlap(examples, data.rule_eval) == 0
    assert draw_examples(data, 4, seed=1)["prompt"] == examples["prompt"]
    assert draw_examples(data, 4, seed=2)["prompt"] != examples["prompt"]
    assert len(draw_examples(data, 500, seed=0)) < 1000  # fewer rows than asked: all of them


def test_unknown_rule_and_peft_method_are_refused(tmp_path):
    from guard_sdk.training.experiments.dapt import rule_data, run_experiment

    with pytest.raises(RecipeError, match="not a HarmBench semantic category"):
        rule_data(tiny(tmp_path, "unused", "rules=[weather]"), "weather", str(SHARED_DATA))
    late = tiny(tmp_path, "unused", "rules=[cybercrime_intrusion,weather]")  # refused before the first rule trains
    with pytest.raises(RecipeError, match="rules: 'weather'"):
        run_experiment(late, data_dir=str(SHARED_DATA), progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(RecipeError, match="peft_methods must name some of"):
        tiny(tmp_path, "unused", "peft_methods=[adapters]")


@pytest.mark.slow
def test_a_tiny_experiment_writes_its_table_and_resumes(tiny_bert, tmp_path, monkeypatch):
    from guard_sdk.training.experiments import dapt as X

    recipe = tiny(tmp_path, tiny_bert)
    summary = X.run_experiment(recipe, recipe_path=RECIPE, data_dir=str(SHARED_DATA), progress=False)
    rows = summary["harmful"]
    assert [r["row"] for r in rows] == ["(a) full fine-tuning, examples", "(b) prompt-tuning, examples",
                                        "(c) neighbours + full fine-tuning",
                                        "(d) DAPT: neighbours + prompt-tuning"]
    assert [r["examples"] for r in rows] == [4, 4, 4, 4]
    assert rows[0]["trained_rows"] == 4 and rows[2]["trained_rows"] > 4  # neighbours joined (c) and (d)
    runs = sorted(p.name for p in (tmp_path / "out" / "harmful" / "runs").iterdir())
    assert runs == ["k2-s0-full-aug.json", "k2-s0-full-plain.json", "k2-s0-prompt-tuning-aug.json",
                    "k2-s0-prompt-tuning-plain.json"]
    record = json.loads((tmp_path / "out" / "harmful" / "runs" / "k2-s0-prompt-tuning-aug.json").read_text())
    assert record["rule"]["n"] == record["rule"]["unsafe"] + sum(
        1 for y in X.rule_data(recipe, "harmful", str(SHARED_DATA)).rule_eval["label"] if y == 0)
    table = (tmp_path / "dapt.md").read_text()
    assert "## harmful" in table and table.count("| 2 | (") == 4 and "Before adaptation: rule F1" in table

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(X, "train_adapter", no_training)
    monkeypatch.setattr(X, "train_classifier", no_training)
    assert X.run_experiment(recipe, recipe_path=RECIPE, data_dir=str(SHARED_DATA), progress=False) == summary
