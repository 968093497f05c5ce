"""The ablation command: rows train in dependency order, share the teacher's cached scores, are judged on the
same rows, and the table and the shipping verdict say what the figures say."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from guard_sdk.cli import main
from guard_sdk.training.experiments.ablation import ShipRule, load_ablation, run_ablation, ship_verdict
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
    rule = ShipRule(candidate="c", against="a", fpr_source="xstest", max_fpr_rise=0.02, max_f1_loss=None,
                    dev_split=None)
    shipped, verdict = ship_verdict({"a": _figures(0.92, 0.975, 0.43), "c": candidate}, rule)
    assert shipped is ship and mark in verdict
    assert ("does not beat" in verdict) is not ship


def _ablation(tmp_path, rows, suite=None, **ship):
    """An ablation file; a row's recipe given as ("bundle", NAME) makes it a bundle row."""
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tiny-ablation", "table": str(tmp_path / "ablation.md"), "suite": suite,
        "rows": [{"label": label, "recipe": None, "bundle": recipe[1]} if isinstance(recipe, tuple) else
                 {"label": label, "recipe": str(recipe), "bundle": None} for label, recipe in rows],
        "ship": {"candidate": rows[-1][0], "against": rows[0][0], "fpr_source": None if suite else "held",
                 "max_fpr_rise": 0.02, "max_f1_loss": 0.02 if suite else None, "dev_split": None, **ship}}))
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


ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_ablations_load_before_their_harmaug_rows_are_built(monkeypatch):
    monkeypatch.chdir(ROOT)  # rows name their recipes from the repository root
    offline, _ = load_ablation("training/recipes/ablation-offline.yaml")
    assert offline.suite is None and offline.ship.fpr_source == "xstest" and offline.ship.max_f1_loss is None
    broad, recipes = load_ablation("training/recipes/ablation-broad.yaml")
    assert broad.suite == "public" and broad.table == "docs/ablation-broad.md"
    assert [r.name for r in recipes.values()] == ["default-guard", "broad-student", "distill-broad",
                                                  "distill-broad-harmaug", "distill-broad-lookalikes",
                                                  "distill-broad-disguises", "teacher-mpnet"]
    assert (broad.ship.candidate, broad.ship.against) == ("(d+) + disguised copies",
                                                          "previous default (distill-offline, int8)")
    assert broad.rows[0].bundle == "build/bundles/previous-default"  # make build/bundles/previous-default
    assert broad.ship.dev_split == "training/recipes/default-guard.yaml"
    assert (broad.ship.fpr_source, broad.ship.max_f1_loss, broad.ship.max_fpr_rise) == (None, 0.02, 0.02)
    harmaug, lookalikes, teacher = (recipes["(d) + HarmAug rows"], recipes["(d+) + benign look-alikes"],
                                    recipes["(e) teacher"])
    assert harmaug.distill.augmented == ["build/augment/qwen"]  # kept, built or not
    assert lookalikes.distill.augmented == ["build/augment/qwen", "build/augment/lookalikes", "build/augment/contrast",
                                            "build/augment/sensitive", "build/augment/counterspeech",
                                            "build/augment/everyday"]
    assert harmaug.distill.teacher.classifier == lookalikes.distill.teacher.classifier == f"{teacher.output_dir}/model"
    assert len(recipes["(a) student, seed data"].data.sources) < len(recipes["(b) student, broad data"].data.sources)


def test_a_suite_lets_rows_train_on_other_data_and_takes_over_the_holdout_check(tmp_path):
    seed, held = _seed(tmp_path)
    a = _recipe(tmp_path / "a", "unused", seed, data__holdout=[str(held)])
    b = _recipe(tmp_path / "b", "unused", seed, data__sources=[str(seed), str(held)])
    assert list(load_ablation(_ablation(tmp_path, [("a", a), ("b", b)], suite="public"))[1]) == ["a", "b"]
    with pytest.raises(RecipeError, match="suite must be one of public, or null; got 'privat'"):
        load_ablation(_ablation(tmp_path, [("a", a), ("b", b)], suite="privat"))
    with pytest.raises(RecipeError, match="with a suite, ship.max_f1_loss .* ship.fpr_source is null"):
        load_ablation(_ablation(tmp_path, [("a", a), ("b", b)], suite="public", fpr_source="held"))
    with pytest.raises(RecipeError, match="without a suite, ship.fpr_source names a holdout source and "
                                          "ship.max_f1_loss is null"):
        load_ablation(_ablation(tmp_path, [("a", a), ("a2", a)], max_f1_loss=0.02))
    with pytest.raises(RecipeError, match="row 'today' is a bundle, .* needs a suite"):
        load_ablation(_ablation(tmp_path, [("today", ("bundle", "default")), ("b", b)]))
    with pytest.raises(RecipeError, match="ship.dev_split applies with a suite"):
        load_ablation(_ablation(tmp_path, [("a", a), ("a2", a)], dev_split=str(a)))
    both = _ablation(tmp_path, [("a", a), ("b", b)], suite="public")
    rows = yaml.safe_load(both.read_text())
    rows["rows"][0]["bundle"] = "default"
    both.write_text(yaml.safe_dump(rows))
    with pytest.raises(RecipeError, match="row 'a' names a recipe or a bundle"):
        load_ablation(both)
    ablation, recipes = load_ablation(_ablation(tmp_path, [("today", ("bundle", "default")), ("b", b)],
                                                suite="public", dev_split=str(a)))
    assert list(recipes) == ["b"] and ablation.rows[0].bundle == "default" and ablation.ship.dev_split == str(a)


def test_a_row_that_must_train_without_its_harmaug_rows_is_refused_before_anything_trains(tmp_path):
    seed, _ = _seed(tmp_path)
    distill = {"teacher": {"kind": "classifier", "model": None, "classifier": str(tmp_path / "teacher"),
                           "max_length": 32, "batch_size": 8, "logprobs": 1},
               "augmented": [str(tmp_path / "aug")], "score_cache": str(tmp_path / "scores"), "ce_weight": 0.5,
               "kl_weight": 0.5, "temperature": 1.0}
    a = _recipe(tmp_path / "a", "unused", seed)
    d = _recipe(tmp_path / "d", "unused", seed, distill=distill)
    path = _ablation(tmp_path, [("a", a), ("d", d)], suite="public")
    assert list(load_ablation(path)[1]) == ["a", "d"]  # loading tolerates it: a trained row needs them no more
    with pytest.raises(RecipeError, match=rf"row 'd' has no trained model, .* {tmp_path / 'aug'} is not labelled"):
        run_ablation(path, progress=False)
    assert not (tmp_path / "a" / "run").exists()  # row a, first in training order, was not started


def _suite(mean_f1, **sets):
    """Suite figures of a row: each set as (F1, FPR); F1 None where the set shows FPR alone."""
    return {"suite": {"mean_f1": mean_f1, "sets": {name: {"shown": "fpr" if f1 is None else "f1", "f1": f1,
                                                          "fpr": fpr, "recall": None}
                                                   for name, (f1, fpr) in sets.items()}}}


@pytest.mark.parametrize("candidate,ship,marks", [
    (_suite(0.825, xstest=(0.90, 0.10), hatecheck=(0.75, 0.20), coconot_contrast=(None, 0.05)), False,
     ["mean F1 0.825 vs 0.800 ✓", "`hatecheck` F1 0.750 vs 0.800 (-5.0 points) ✗", "`xstest` F1 0.900 vs 0.700 "
      "(+20.0 points) ✓"]),
    (_suite(0.845, xstest=(0.90, 0.10), hatecheck=(0.79, 0.20), coconot_contrast=(None, 0.05)), True,
     ["`hatecheck` F1 0.790 vs 0.800 (-1.0 points) ✓", "`coconot_contrast` FPR 0.050 vs 0.050 (+0.0 points) ✓"]),
    (_suite(0.845, xstest=(0.90, 0.10), hatecheck=(0.79, 0.20), coconot_contrast=(None, 0.08)), False,
     ["`coconot_contrast` FPR 0.080 vs 0.050 (+3.0 points) ✗"]),
    (_suite(0.750, xstest=(0.70, 0.10), hatecheck=(0.80, 0.20), coconot_contrast=(None, 0.05)), False,
     ["mean F1 0.750 vs 0.800 ✗"]),
])
def test_on_a_suite_the_candidate_ships_only_with_a_higher_mean_f1_and_no_set_much_worse(candidate, ship, marks):
    rule = ShipRule(candidate="d", against="a", fpr_source=None, max_fpr_rise=0.02, max_f1_loss=0.02, dev_split=None)
    against = _suite(0.800, xstest=(0.70, 0.10), hatecheck=(0.80, 0.20), coconot_contrast=(None, 0.05))
    shipped, verdict = ship_verdict({"a": against, "d": candidate}, rule)
    assert shipped is ship and all(mark in verdict for mark in marks), verdict
    assert ("does not beat" in verdict) is not ship and "dev F1" not in verdict  # dev splits differ: not used
    assert "no set's F1 down by more than 2 points, no set's FPR up by more than 2 points" in verdict


# A fake suite: three sets (both labels; all safe; all unsafe), scored by a fake checkpoint scorer per row.
SUITE_ROWS = {"both": [("u1", 1), ("u2", 1), ("s1", 0), ("s2", 0)], "lookalikes": [("s3", 0), ("s4", 0)],
              "attacks": [("u3", 1), ("u4", 1)]}
SCORES = {"a": {"u1": 0.9, "u2": 0.9, "s1": 0.1, "s2": 0.1, "s3": 0.1, "s4": 0.1, "u3": 0.9, "u4": 0.2},
          "b": {"u1": 0.9, "u2": 0.2, "s1": 0.4, "s2": 0.1, "s3": 0.9, "s4": 0.1, "u3": 0.9, "u4": 0.9}}
THRESHOLDS = {"a": 0.5, "b": 0.3}  # each row is scored at its own: s1 (0.4) is flagged by b only


def _trained_row(tmp_path, name, sources):
    """A row's output folder as training leaves it (its record and data splits), without training."""
    from datasets import Dataset, DatasetDict

    recipe = _recipe(tmp_path / name, "unused", sources[0], data__sources=[str(s) for s in sources])
    run = tmp_path / name / "run"
    (run / "model").mkdir(parents=True)
    record = {"finished": "2025-01-01T00:00:00+00:00", "threshold": {"value": THRESHOLDS[name]},
              "data": {"train": {s.stem: {"0": 3, "1": 3} for s in sources}},
              "dev_pytorch": {"overall": {"f1": 0.9, "auprc": 0.95}}}
    (run / "model" / "guard_training.json").write_text(json.dumps(record))
    test = Dataset.from_dict({"prompt": ["u1", "s1"], "response": [None, None], "label": [1, 0],
                              "source": ["seed", "seed"]})
    DatasetDict({"test": test}).save_to_disk(str(run / "data"))
    return recipe


def _fake_suite(monkeypatch):
    """The "tiny" suite of SUITE_ROWS, and every row's checkpoint scored by SCORES: (sets read, rows scored)."""
    from datasets import Dataset

    from guard_sdk.training import evaluate, public_suite
    from guard_sdk.training.public_suite import SuiteSet

    monkeypatch.setitem(public_suite.SUITES, "tiny", (
        SuiteSet("both", "Both labels"), SuiteSet("lookalikes", "Benign look-alikes", shown=("fpr",)),
        SuiteSet("attacks", "Attacks", shown=("recall",))))
    reads, scored = [], []

    def load_sets(root, sets):
        reads.append(root)
        return root, {s.source: Dataset.from_dict({
            "prompt": [p for p, _ in SUITE_ROWS[s.source]], "response": [None] * len(SUITE_ROWS[s.source]),
            "label": [y for _, y in SUITE_ROWS[s.source]], "source": [s.source] * len(SUITE_ROWS[s.source])})
            for s in sets}

    def checkpoint_scorer(checkpoint, max_length, batch_size, progress):
        row = Path(checkpoint).parents[1].name
        return lambda prompts, responses: scored.append(row) or np.array([SCORES[row][p] for p in prompts])

    monkeypatch.setattr(public_suite, "load_sets", load_sets)
    monkeypatch.setattr(evaluate, "checkpoint_scorer", checkpoint_scorer)
    return reads, scored


def test_the_suite_table_holds_each_rows_headline_figures_and_is_reused_until_a_row_is_retrained(
        tmp_path, monkeypatch):
    reads, scored = _fake_suite(monkeypatch)
    seed, held = _seed(tmp_path)
    a = _trained_row(tmp_path, "a", [seed])
    b = _trained_row(tmp_path, "b", [seed, held])  # other data than row a: allowed, judged on the suite
    path = _ablation(tmp_path, [("(a) seed", a), ("(b) broad", b)], suite="tiny")
    result = run_ablation(path, data_dir=str(tmp_path), progress=False)

    table = (tmp_path / "ablation.md").read_text()
    assert "| row | `both` F1 | `lookalikes` FPR | `attacks` recall | mean F1 |\n|---|---|---|---|---|\n" in table
    assert "| (a) seed | 1.000 | 0.000 | 0.500 | 1.000 |\n| (b) broad | 0.500 | 0.500 | 1.000 | 0.500 |\n" in table
    assert "| row | model | params | sources | train rows |" in table and "not comparable across rows" in table
    assert "| (a) seed | `unused` | 0 | 1 | 6 |" in table and "| (b) broad | `unused` | 0 | 2 | 12 |" in table
    assert not result["ship"] and "mean F1 0.500 vs 1.000 ✗" in result["verdict"] and result["verdict"] in table
    assert "`lookalikes` FPR 0.500 vs 0.000 (+50.0 points) ✗" in result["verdict"]
    assert reads == [tmp_path] and sorted(scored) == ["a"] * 4 + ["b"] * 4  # the sets read once; test + 3 sets
    kept = json.loads((tmp_path / "a" / "run" / "eval_suite_pytorch.json").read_text())
    assert kept["threshold"] == 0.5 and kept["model_finished"] == "2025-01-01T00:00:00+00:00"
    print(table)  # the example in the report

    # A rerun scores nothing and reads no set: every row's results are kept beside its model.
    assert run_ablation(path, data_dir=str(tmp_path), progress=False) == result
    assert reads == [tmp_path] and len(scored) == 8
    # Row a retrained (its record's "finished" changes): row a alone is scored again, test and suite.
    record_path = tmp_path / "a" / "run" / "model" / "guard_training.json"
    record_path.write_text(json.dumps({**json.loads(record_path.read_text()), "finished": "2025-01-02T00:00:00+00:00"}))
    assert run_ablation(path, data_dir=str(tmp_path), progress=False)["rows"] == result["rows"]
    assert len(reads) == 2 and sorted(scored[8:]) == ["a"] * 4
    kept = json.loads((tmp_path / "a" / "run" / "eval_suite_pytorch.json").read_text())
    assert kept["model_finished"] == "2025-01-02T00:00:00+00:00"


class _ShippedGuard:
    """A loaded bundle as the ablation uses one: its threshold, names and classify_batch (SCORES["a"])."""

    threshold = 0.5
    backend = type("Backend", (), {"name": "onnxruntime"})
    manifest = type("Manifest", (), {"name": "old-default", "categories": []})
    artifact = type("Artifact", (), {"path": "model.int8.onnx"})  # a bundle-relative path, as guard.json has it

    def classify_batch(self, prompts, responses):
        return [type("Verdict", (), {"score": SCORES["a"][p]}) for p in prompts]


def test_a_shipped_bundle_row_is_scored_as_users_run_it_and_the_old_dev_split_is_checked_per_source(
        tmp_path, monkeypatch):
    from datasets import Dataset

    from guard_sdk.training import finetune
    from guard_sdk.training.experiments import ablation

    _fake_suite(monkeypatch)
    monkeypatch.setattr(ablation, "_load_bundle", lambda bundle: bundle == "default" and _ShippedGuard())
    dev = Dataset.from_dict({"prompt": ["u1", "u2", "s1", "s3", "s4"], "response": [None] * 5,
                             "label": [1, 1, 0, 0, 0], "source": ["harm", "harm", "harm", "benign", "benign"]})
    monkeypatch.setattr(finetune, "build_splits", lambda data, data_dir: ({"dev": dev}, None))
    seed, held = _seed(tmp_path)
    b = _trained_row(tmp_path, "b", [seed, held])
    path = _ablation(tmp_path, [("today", ("bundle", "default")), ("(b) broad", b)], suite="tiny", dev_split=str(b))
    result = run_ablation(path, data_dir=str(tmp_path), progress=False)

    table = (tmp_path / "ablation.md").read_text()
    assert "| today | `default (old-default, model.int8.onnx)` | – | – | – | – | – | 0.500 | – | – | – | – |" in table
    assert "not comparable across rows" in table and "a shipped bundle, scored as users run it" in table
    assert "| today | 1.000 | 0.000 | 0.500 | 1.000 |\n| (b) broad | 0.500 | 0.500 | 1.000 | 0.500 |\n" in table
    # The dev split at each row's threshold: b (0.3) misses u2 (0.2), flags s1 (0.4) and s3 (0.9); the bundle
    # (0.5) gets harm right and flags nothing benign. "benign" holds safe rows only: its FPR is checked, not F1.
    assert "| `benign` | 2 | 0 | – | – | 0.000 | 0.500 |\n| `harm` | 3 | 2 | 1.000 | 0.500 | 0.000 | 1.000 |" in table
    verdict = result["verdict"]
    assert "dev split `harm` F1 0.500 vs 1.000 (-50.0 points) ✗" in verdict and not result["ship"]
    assert "dev split `benign` FPR 0.500 vs 0.000 (+50.0 points) ✗" in verdict
    assert "dev split `harm` FPR" not in verdict and f"the dev split of {b}" in verdict


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
