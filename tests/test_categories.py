"""The category head: targets from each row's source categories, a multi-label loss trained with the unsafe head,
per-category thresholds on dev, outputs appended to the classifier without moving P(unsafe)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from guard_sdk.training.recipe import CategoriesRecipe

from .conftest import SAFE_TEXTS, UNSAFE_TEXTS, build_tiny_checkpoint
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
    names, counts = supported(train, dev, CategoriesRecipe(min_train_rows=2, min_dev_rows=1, weight=1.0,
                                                                      balance="none"), ["a", "b"])
    # b's second train row is unknown: it does not count
    assert names == ["a"] and counts == {"a": {"train": 3, "dev": 1}, "b": {"train": 1, "dev": 1}}


def test_the_category_loss_reads_only_rows_whose_categories_are_known():
    import torch

    from guard_sdk.training.categories import category_loss

    logits = torch.tensor([[2.0, -1.0], [0.5, 0.5], [9.0, 9.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits[:2], targets[:2], reduction="none").sum(-1)
    # The third row's confident, wrong logits are of a row whose harm is unknown: they count for nothing.
    assert torch.isclose(category_loss(logits, targets, torch.tensor([1.0, 1.0, 0.0])), bce.mean())
    assert float(category_loss(logits, targets, torch.zeros(3))) == 0.0  # a batch of unknown rows adds nothing


def test_balance_sqrt_weighs_a_rare_categorys_positives_and_the_loss_applies_it():
    import torch

    from guard_sdk.training.categories import MAX_POS_WEIGHT, category_loss, positive_weights

    # 2,000 known rows: category a on 500 (sqrt(1500/500)), b on 20 (sqrt(1980/20)), c on 1 (sqrt(1999): capped);
    # the unknown row's categories do not count
    targets = np.zeros((2001, 3), dtype=np.float32)
    targets[:500, 0] = 1
    targets[500:520, 1] = 1
    targets[520, 2] = 1
    targets[2000] = 1
    known = np.array([True] * 2000 + [False])
    weights = positive_weights(targets, known, "sqrt")
    assert weights == [round(float(np.sqrt(3)), 4), round(float(np.sqrt(99)), 4), MAX_POS_WEIGHT]
    assert positive_weights(targets, known, "none") is None
    logits = torch.tensor([[0.3, -1.0, 2.0], [-0.5, 0.7, 0.1]])
    truth = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    w = torch.tensor(weights)
    manual = -(w * truth * torch.nn.functional.logsigmoid(logits)
               + (1 - truth) * torch.nn.functional.logsigmoid(-logits)).sum(-1).mean()
    assert torch.isclose(category_loss(logits, truth, torch.ones(2), weights), manual)
    assert category_loss(logits, truth, torch.ones(2), weights) > category_loss(logits, truth, torch.ones(2))


def test_joint_training_teaches_several_categories_at_once(tmp_path):
    """Rows about weapons, about breaking into someone's account, about both, and safe ones: after training, each
    row's categories are the ones over 0.5, and the unsafe logits stay the first two."""
    import torch
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, TrainingArguments

    from guard_sdk.export.checkpoint import checkpoint_categories, load_checkpoint
    from guard_sdk.training.categories import KNOWN, TARGETS, CategoryLoss, add_category_outputs
    from guard_sdk.training.losses import loss_trainer_class

    model, tokenizer = load_checkpoint(build_tiny_checkpoint(tmp_path / "tiny", "bert", probe=False))
    add_category_outputs(model, ["indiscriminate_weapons", "privacy"], seed=0)
    assert checkpoint_categories(model.config) == ["indiscriminate_weapons", "privacy"]
    both = f"{UNSAFE_TEXTS[0]} {UNSAFE_TEXTS[4]}"  # the tiny tokenizer knows the words of the test texts only
    texts = {UNSAFE_TEXTS[0]: [1, 0], UNSAFE_TEXTS[7]: [1, 0], UNSAFE_TEXTS[4]: [0, 1], both: [1, 1],
             SAFE_TEXTS[0]: [0, 0], SAFE_TEXTS[2]: [0, 0]}
    prompts = [t for t in texts for _ in range(8)]
    rows = Dataset.from_dict({**tokenizer(prompts, truncation=True, max_length=32),
                              "labels": [int(any(texts[t])) for t in prompts],
                              TARGETS: [texts[t] for t in prompts], KNOWN: [1.0] * len(prompts)})
    args = TrainingArguments(output_dir=str(tmp_path / "run"), per_device_train_batch_size=8, learning_rate=2e-3,
                             max_steps=120, report_to=[], use_cpu=True, save_strategy="no", seed=0,
                             disable_tqdm=True)
    trainer = loss_trainer_class(categories=CategoryLoss(1.0))
    trainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer)).train()
    model.eval()
    with torch.inference_mode():
        logits = model(**tokenizer(list(texts), padding=True, return_tensors="pt")).logits
    assert logits.shape == (6, 4)
    assert (torch.sigmoid(logits[:, 2:]) > 0.5).int().tolist() == list(texts.values())
    assert (logits[:, 1] > logits[:, 0]).int().tolist() == [1, 1, 1, 1, 0, 0]


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


def test_finetune_trains_the_head_and_records_it(tmp_path, tiny_bert):
    from guard_sdk.export.checkpoint import checkpoint_categories, load_checkpoint
    from guard_sdk.training.finetune import finetune
    from guard_sdk.training.recipe import load_recipe

    data = tmp_path / "seed.jsonl"
    rows = [{"prompt": f"{t} ({i})", "label": 1, "category": CATEGORY_OF.get(k)}
            for i in range(4) for k, t in enumerate(UNSAFE_TEXTS)]
    rows += [{"prompt": f"{t} ({i})", "label": 0} for i in range(4) for t in SAFE_TEXTS]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"min_train_rows": 6, "min_dev_rows": 1, "weight": 1.0, "balance": "none"}
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
    assert record["weight"] == 1.0 and set(record["dev"]) == set(names)


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
