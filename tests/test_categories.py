"""The category head: targets from each row's source categories, a multi-label fit on frozen features, per-category
thresholds on dev, appended to the classifier without moving P(unsafe)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from guard_sdk.training.recipe import CategoriesRecipe

from .conftest import SAFE_TEXTS, UNSAFE_TEXTS
from .test_finetune import _recipe


def _rows(rows):
    from guard_sdk.training.data import Row, to_dataset

    return to_dataset([Row(p, None, label, source, category) for p, label, source, category in rows])


def test_targets_say_none_for_a_safe_row_and_nothing_for_an_unsafe_row_of_unknown_harm():
    from guard_sdk.training.categories import category_targets

    ds = _rows([("hi", 0, "alpaca_eval", None), ("build a bomb", 1, "advbench", None),
                ("kill them all", 1, "multijail:en", "['Weapons', 'Violence & incitement']"),
                ("you idiot", 1, "surge", None)])
    targets, known = category_targets(ds, ["violent_crimes", "non_violent_crimes", "harassment", "hate"])
    assert known.tolist() == [True, False, True, True]
    assert targets.tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0]]


def test_a_category_needs_its_train_and_dev_rows_to_be_scored():
    from guard_sdk.training.categories import supported

    train = (np.array([[1, 0], [1, 1], [0, 1], [1, 0]], dtype=np.float32), np.array([True, True, False, True]))
    dev = (np.array([[1, 0], [0, 1]], dtype=np.float32), np.array([True, True]))
    names, counts = supported(train, dev, CategoriesRecipe(min_train_rows=2, min_dev_rows=1, l2=0.0), ["a", "b"])
    # b's second train row is unknown: it does not count
    assert names == ["a"] and counts == {"a": {"train": 3, "dev": 1}, "b": {"train": 1, "dev": 1}}


def test_the_fit_is_multi_label():
    from guard_sdk.training.categories import fit_head, sigmoid

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    y = np.stack([x[:, 0] > 0.5, x[:, 1] > 0.5], axis=1).astype(np.float32)  # independent: both, one, or none
    weight, bias = fit_head(x * 3 + 1, y, l2=1e-4)  # unscaled, off-centre features: the fit standardises them
    p = sigmoid((x * 3 + 1) @ weight.T + bias)
    assert weight.shape == (2, 6) and np.mean((p > 0.5) == (y > 0.5)) > 0.97
    both = (y[:, 0] == 1) & (y[:, 1] == 1)
    assert both.sum() > 20 and np.mean((p[both] > 0.5).all(axis=1)) > 0.9


def test_appending_the_head_leaves_the_unsafe_logits_as_they_were(tiny_bert):
    import torch

    from guard_sdk.export.checkpoint import checkpoint_categories, load_checkpoint
    from guard_sdk.training.categories import append_head

    model, tokenizer = load_checkpoint(tiny_bert)
    batch = tokenizer(UNSAFE_TEXTS[:3] + SAFE_TEXTS[:3], padding=True, return_tensors="pt")
    with torch.inference_mode():
        before = model(**batch).logits
    append_head(model, ["hate", "privacy"], np.ones((2, model.config.hidden_size)), np.array([0.5, -0.5]))
    with torch.inference_mode():
        after = model(**batch).logits
    assert after.shape == (6, 4) and torch.allclose(after[:, :2], before, rtol=1e-4)  # a wider matmul, the same sums
    assert checkpoint_categories(model.config) == ["hate", "privacy"] and model.config.id2label[1] == "unsafe"
    with pytest.raises(ValueError, match="already has 4 outputs"):
        append_head(model, ["hate"], np.ones((1, model.config.hidden_size)), np.zeros(1))


CATEGORY_OF = {  # the unsafe test texts with a category named as ours (a user's file); two left unknown
    0: "indiscriminate_weapons", 1: "non_violent_crimes", 2: "non_violent_crimes", 3: "violent_crimes",
    4: "privacy", 5: "harassment", 6: "non_violent_crimes", 7: "indiscriminate_weapons", 8: "non_violent_crimes",
    9: "non_violent_crimes", 10: "non_violent_crimes"}


def test_finetune_fits_the_head_after_training_and_records_it(tmp_path, tiny_bert):
    from guard_sdk.export.checkpoint import checkpoint_categories, load_checkpoint
    from guard_sdk.training.evaluate import checkpoint_scorer
    from guard_sdk.training.finetune import finetune
    from guard_sdk.training.recipe import load_recipe

    data = tmp_path / "seed.jsonl"
    rows = [{"prompt": f"{t} ({i})", "label": 1, "category": CATEGORY_OF.get(k)}
            for i in range(4) for k, t in enumerate(UNSAFE_TEXTS)]
    rows += [{"prompt": f"{t} ({i})", "label": 0} for i in range(4) for t in SAFE_TEXTS]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"min_train_rows": 6, "min_dev_rows": 1, "l2": 0.1}  # 48 near-separable rows: keep the weights small
    recipe = load_recipe(_recipe(tmp_path, tiny_bert, data, categories=spec, train__epochs=1,
                                 data__splits={"train": 0.6, "dev": 0.3, "test": 0.1}))
    result = finetune(recipe, progress=False)

    record = json.loads((result.model_dir / "guard_training.json").read_text())["categories"]
    counts = record["rows"]
    names = [n for n in counts if counts[n]["train"] >= 6 and counts[n]["dev"] >= 1]
    assert record["names"] == names and "non_violent_crimes" in names and "harassment" not in names
    assert set(record["thresholds"]) == set(names) and all(0 < t < 1 for t in record["thresholds"].values())
    assert record["rule"].startswith("max_f1 per category") and counts["hate"] == {"train": 0, "dev": 0}
    model, _ = load_checkpoint(result.model_dir)
    assert checkpoint_categories(model.config) == names and model.config.num_labels == 2 + len(names)
    heads = json.loads((result.bundle / "guard.json").read_text())["categories"]  # the bundle takes them as fitted
    assert heads == [{"name": n, "index": 2 + i, "threshold": record["thresholds"][n]} for i, n in enumerate(names)]
    card = (result.bundle / "MODEL_CARD.md").read_text()
    assert "Harm categories scored (max_f1 per category" in card and "| non_violent_crimes | " in card
    assert "Not scored, too few rows to fit or calibrate: " in card and "harassment (" in card
    # P(unsafe) is the trained model's, category head or not: the dev threshold stands.
    plain = tmp_path / "plain"
    finetune(load_recipe(_recipe(plain, tiny_bert, data, train__epochs=1,
                                 data__splits={"train": 0.6, "dev": 0.3, "test": 0.1})), export=False, progress=False)
    texts = UNSAFE_TEXTS + SAFE_TEXTS
    with_head = checkpoint_scorer(result.model_dir, 32, progress=False)(texts, [None] * len(texts))
    without = checkpoint_scorer(plain / "run" / "model", 32, progress=False)(texts, [None] * len(texts))
    np.testing.assert_allclose(with_head, without, atol=1e-5)


def test_training_from_a_model_with_categories_starts_from_its_two_label_guard(categories_checkpoint):
    import torch

    from guard_sdk.export.checkpoint import checkpoint_categories, load_checkpoint
    from guard_sdk.training.trainer import load_classifier

    model, tokenizer = load_classifier(str(categories_checkpoint))
    full, _ = load_checkpoint(categories_checkpoint)
    assert model.config.num_labels == 2 and checkpoint_categories(model.config) == []
    batch = tokenizer(UNSAFE_TEXTS[:2] + SAFE_TEXTS[:2], padding=True, return_tensors="pt")
    with torch.inference_mode():
        assert torch.allclose(model(**batch).logits, full(**batch).logits[:, :2], rtol=1e-4)


def test_eval_reports_each_category_and_a_confusion_table(categories_bundle, tmp_path):
    import io

    from guard_sdk import Guard
    from guard_sdk.cli import main
    from guard_sdk.training.evaluate import metrics

    named = ["violent_crimes", "privacy", "hate"]
    rows = [{"prompt": t, "label": 1, "category": named[i % 3]} for i, t in enumerate(UNSAFE_TEXTS)]
    rows += [{"prompt": t, "label": 0} for t in SAFE_TEXTS]
    data = tmp_path / "labelled.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = io.StringIO()
    assert main(["eval", "--data", str(data), "--bundle", str(categories_bundle), "-o", str(tmp_path / "e"), "-q"],
                out=out) == 0
    result = json.loads((tmp_path / "e" / "eval.json").read_text())["categories"]
    verdicts = Guard.load(categories_bundle).classify_batch([r["prompt"] for r in rows])
    for name in named:
        truth = [int(r.get("category") == name) for r in rows]
        expected = metrics(truth, [v.categories[name] for v in verdicts], 0.5)
        assert result["by_category"][name] == pytest.approx(expected)
    confusion = result["confusion"]
    assert confusion["categories"] == named and sum(map(sum, confusion["counts"])) == len(UNSAFE_TEXTS)
    said = [max(named, key=lambda n: v.categories[n]) for v in verdicts[:len(UNSAFE_TEXTS)]]
    assert confusion["counts"][0][0] == sum(1 for i, s in enumerate(said) if i % 3 == 0 and s == "violent_crimes")
    assert result["rows"] == len(rows) and "| true \\ highest-scored | violent_crimes | privacy | hate | other |" in (
        out.getvalue())
