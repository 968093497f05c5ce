"""The ablation command: rows train in dependency order, share the teacher's cached scores, are judged on the
same rows, and the table and the shipping verdict say what the figures say."""

import io
import json

import pytest
import yaml

from guard_sdk.cli import main
from guard_sdk.training.experiments.ablation import ShipRule, load_ablation, ship_verdict
from guard_sdk.training.recipe import RecipeError

from .test_distill import _distill_recipe
from .test_finetune import _recipe


def _figures(f1, auprc, fpr):
    return {"dev_f1": f1, "dev_auprc": auprc, "fpr:xstest": fpr}


@pytest.mark.parametrize("candidate,ship,mark", [
    (_figures(0.93, 0.98, 0.44), True, "a rise of +1.0 points"),
    (_figures(0.93, 0.98, 0.46), False, "a rise of +3.0 points; at most 2) ✗"),
    (_figures(0.92, 0.98, 0.40), False, "dev F1 0.920 vs 0.920 ✗"),
    (_figures(0.95, 0.97, 0.40), False, "dev AUPRC 0.970 vs 0.975 ✗"),
])
def test_the_candidate_ships_only_if_it_beats_the_default_on_f1_and_auprc_without_more_over_blocking(
        candidate, ship, mark):
    rule = ShipRule(candidate="c", against="a", fpr_source="xstest", max_fpr_rise=0.02)
    shipped, verdict = ship_verdict({"a": _figures(0.92, 0.975, 0.43), "c": candidate}, rule)
    assert shipped is ship and mark in verdict
    assert ("does not beat" in verdict) is not ship


def _ablation(tmp_path, rows, **ship):
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tiny-ablation", "table": str(tmp_path / "ablation.md"),
        "rows": [{"label": label, "recipe": str(recipe)} for label, recipe in rows],
        "ship": {"candidate": rows[-1][0], "against": rows[0][0], "fpr_source": "held", "max_fpr_rise": 0.02,
                 **ship}}))
    return path


def _seed(tmp_path):
    from .conftest import SAFE_TEXTS, UNSAFE_TEXTS

    seed, held = tmp_path / "seed.jsonl", tmp_path / "held.jsonl"
    seed.write_text("".join(json.dumps({"prompt": t, "label": int(t in UNSAFE_TEXTS)}) + "\n"
                            for t in UNSAFE_TEXTS + SAFE_TEXTS))
    held.write_text("".join(json.dumps({"prompt": f"How do I kill {w}?", "label": 0}) + "\n"
                            for w in ("a zombie process", "weeds", "time", "the lights")))
    return seed, held


def test_rows_judged_on_other_data_or_an_unknown_ship_row_are_refused(tmp_path, tiny_bert):
    seed, held = _seed(tmp_path)
    a = _recipe(tmp_path / "a", tiny_bert, seed, data__holdout=[str(held)])
    b = _recipe(tmp_path / "b", tiny_bert, seed, data__holdout=[str(held)], data__seed=1)
    with pytest.raises(RecipeError, match="row 'b' is judged on other data than row 'a'"):
        load_ablation(_ablation(tmp_path, [("a", a), ("b", b)]))
    c = _recipe(tmp_path / "c", tiny_bert, seed, data__holdout=[str(held)], data__max_train_rows_per_source=10)
    assert list(load_ablation(_ablation(tmp_path, [("a", a), ("c", c)]))[1]) == ["a", "c"]  # the cap may differ
    with pytest.raises(RecipeError, match="ship.against must be one of the row labels: a, c"):
        load_ablation(_ablation(tmp_path, [("a", a), ("c", c)], against="z"))
    with pytest.raises(RecipeError, match="ship.fpr_source must be a holdout source of the rows: held"):
        load_ablation(_ablation(tmp_path, [("a", a), ("c", c)], fpr_source="xstest"))


@pytest.mark.slow
def test_one_command_trains_the_missing_rows_teacher_first_and_writes_the_table(tmp_path):
    from .conftest import build_tiny_checkpoint

    seed, held = _seed(tmp_path)
    untrained = build_tiny_checkpoint(tmp_path / "untrained", "bert", probe=False, init_range=0.02)
    teacher = _recipe(tmp_path / "t", untrained, seed, data__holdout=[str(held)], export=None)
    teacher_model = tmp_path / "t" / "run" / "model"
    student = _distill_recipe(tmp_path / "s", teacher_model, [], data__holdout=[str(held)], export=None,
                              data__sources=[str(seed)])
    # Listed student first: the command must still train the teacher before the student it distils from.
    path = _ablation(tmp_path, [("(b) student", student), ("(d) teacher", teacher)])
    out = io.StringIO()
    assert main(["ablation", "--recipe", str(path), "-q"], out=out) == 0
    result = json.loads(out.getvalue())

    table = (tmp_path / "ablation.md").read_text()
    assert table.startswith("# Ablation: tiny-ablation\n") and f"guard-sdk ablation --recipe {path}" in table
    lines = [line for line in table.splitlines() if line.startswith("| (")]
    assert [line.split(" | ")[0] for line in lines] == ["| (b) student", "| (d) teacher"]
    for (label, folder, epochs), line in zip((("(b) student", "s", 2), ("(d) teacher", "t", 10)), lines):
        row, run = result["rows"][label], tmp_path / folder / "run"
        record = json.loads((run / "model" / "guard_training.json").read_text())
        train_rows = sum(sum(c.values()) for c in record["data"]["train"].values())
        assert row["train_rows"] == train_rows and row["rows_seen"] == train_rows * epochs
        assert row["dev_f1"] == record["dev_pytorch"]["overall"]["f1"] and f" {train_rows:,} |" in line
        held_out = json.loads((run / "eval_holdout_pytorch.json").read_text())
        assert held_out["overall"]["n"] == 4 and row["fpr:held"] == held_out["by_source"]["held"]["fpr"]
    assert result["verdict"] in table and ("does not beat" in result["verdict"]) is not result["ship"]

    # A rerun trains nothing and rescoring nothing: the models and their held-out reports are reused.
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/run/**/*.json")}
    assert main(["ablation", "--recipe", str(path), "-o", str(tmp_path / "again.md"), "-q"], out=io.StringIO()) == 0
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/run/**/*.json")} == stamps
    assert (tmp_path / "again.md").read_text() == table  # -o: the same table, written where it says
