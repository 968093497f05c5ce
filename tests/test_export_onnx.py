"""ONNX export: dynamic axes, parity recorded and enforced, nothing left behind on failure."""

import json
import logging
import os
import shutil
import stat
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort
import pytest

from guard_sdk import ExportError, Guard, ParityError
from guard_sdk.bundle import read_manifest, verify_bundle
from guard_sdk.errors import FolderInUseError
from guard_sdk.export import ExportConfig, export_bundle
from guard_sdk.export.checkpoint import unsafe_index
from guard_sdk.export.parity import ParityInputs, measure, sample_rows
from guard_sdk.tokenization import Window

from .conftest import SAFE_TEXTS, TINY_INT8, UNSAFE_TEXTS

TEXTS = UNSAFE_TEXTS + SAFE_TEXTS
LABELLED = [(t, None, 1) for t in UNSAFE_TEXTS] + [(t, None, 0) for t in SAFE_TEXTS]


@pytest.mark.parametrize("fixture", ["bert_bundle", "deberta_bundle"])
def test_onnx_has_dynamic_batch_and_sequence_axes(request, fixture):
    bundle = request.getfixturevalue(fixture)
    manifest = verify_bundle(bundle)
    for artifact in manifest.artifacts:
        session = ort.InferenceSession(str(bundle / artifact.path))
        assert [i.name for i in session.get_inputs()] == manifest.inputs
        for batch, length in [(1, 5), (3, 17), (2, manifest.max_length)]:
            feeds = {name: np.ones((batch, length), dtype=np.int64) for name in manifest.inputs}
            assert session.run(None, feeds)[0].shape == (batch, 2)


def test_deberta_v3_shape_exports_without_token_types(deberta_bundle):
    manifest = verify_bundle(deberta_bundle)
    assert manifest.inputs == ["input_ids", "attention_mask"]
    assert manifest.source["model_type"] == "deberta-v2"
    fp32 = manifest.artifacts[0]
    assert fp32.parity.max_abs_diff <= 1e-4 and fp32.parity.agreement == 1.0


def test_parity_is_measured_on_prompts_pairs_and_full_windows(bert_bundle):
    manifest = verify_bundle(bert_bundle)
    parity = manifest.artifacts[0].parity
    assert parity.texts == 20 and parity.windows > parity.texts  # the two long texts span several windows
    assert parity.reference == "pytorch-fp32" and parity.tolerance == 1e-4


@pytest.mark.slow
def test_minilm_round_trip_meets_the_default_bounds(minilm_bundle, minilm_probe):
    """The packaged all-MiniLM-L6-v2 → ONNX fp32 and int8 → Guard, at the default tolerances."""
    manifest = verify_bundle(minilm_bundle)
    fp32, int8 = manifest.artifacts
    assert (fp32.precision, int8.precision) == ("fp32", "int8")
    assert fp32.parity.max_abs_diff <= 1e-4 and fp32.parity.agreement == 1.0
    assert int8.parity.max_abs_diff <= 0.05 and int8.parity.agreement >= 0.98
    assert int8.bytes < fp32.bytes / 3  # int8 weights: about a quarter of the fp32 file
    assert manifest.max_length == 512 and manifest.inputs[-1] == "token_type_ids"
    want = np.array([1] * len(UNSAFE_TEXTS) + [0] * len(SAFE_TEXTS))
    verdicts = {p: Guard.load(minilm_bundle, precision=p).classify_batch(UNSAFE_TEXTS + SAFE_TEXTS)
                for p in ("fp32", "int8")}
    labels = {p: np.array([int(v.unsafe) for v in vs]) for p, vs in verdicts.items()}
    scores = {p: np.array([v.score for v in vs]) for p, vs in verdicts.items()}
    assert (labels["fp32"] == want).mean() >= 0.8  # a linear probe on unseen texts, not a trained guard
    assert (labels["int8"] == labels["fp32"]).all()
    assert np.max(np.abs(scores["fp32"] - scores["int8"])) <= 0.05


def test_failed_parity_writes_nothing(tiny_bert, tmp_path):
    out = tmp_path / "strict"
    with pytest.raises(ParityError, match=r"model.int8.onnx \(onnx int8\) disagrees with PyTorch"):
        export_bundle(tiny_bert, out, ExportConfig(int8_tolerance=1e-9, int8_per_channel="on"))
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no staging folder left either


def test_per_tensor_is_the_fallback_when_per_channel_misses(tiny_bert, tmp_path):
    manifest = export_bundle(tiny_bert, tmp_path / "b", ExportConfig(precisions=("int8",), int8_tolerance=1.0,
                                                                    int8_min_agreement=0.0, int8_per_channel="off"))
    [int8] = manifest.artifacts
    assert int8.quantization["per_channel"] is False
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["MODEL_CARD.md", "guard.json", "model.int8.onnx",
                                                                  "tokenizer.json"]


def test_overwrite_replaces_only_a_guard_bundle_or_an_empty_folder(tiny_bert, bert_bundle, tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    for overwrite in (False, True):  # overwrite used to delete keep.txt with the folder
        with pytest.raises(FolderInUseError, match=r"b holds files but no guard.json.*new or empty folder"):
            export_bundle(tiny_bert, out, ExportConfig(overwrite=overwrite, **TINY_INT8))
        assert (out / "keep.txt").read_text() == "mine"
    bundle = Path(shutil.copytree(bert_bundle, tmp_path / "old"))
    with pytest.raises(ExportError, match="already exists"):
        export_bundle(tiny_bert, bundle)
    export_bundle(tiny_bert, bundle, ExportConfig(overwrite=True, **TINY_INT8))
    assert json.loads((bundle / "guard.json").read_text())["name"] == "old"
    (tmp_path / "empty").mkdir()
    export_bundle(tiny_bert, tmp_path / "empty", ExportConfig(precisions=("fp32",)))
    assert (tmp_path / "empty" / "guard.json").is_file()


def test_output_at_or_above_the_checkpoint_is_refused(tiny_bert, tmp_path):
    checkpoint = Path(shutil.copytree(tiny_bert, tmp_path / "ckpt"))
    (checkpoint / "guard.json").write_text("{}")  # even a checkpoint that looks like a bundle
    before = sorted(p.name for p in checkpoint.iterdir())
    for out in (checkpoint, tmp_path):
        with pytest.raises(FolderInUseError, match="is the checkpoint being exported or holds it"):
            export_bundle(checkpoint, out, ExportConfig(overwrite=True, precisions=("fp32",)))
    assert sorted(p.name for p in checkpoint.iterdir()) == before


@pytest.mark.parametrize("umask,folder,file", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_the_bundle_follows_the_umask(tiny_bert, tmp_path, umask, folder, file):
    old = os.umask(umask)
    try:
        export_bundle(tiny_bert, tmp_path / "b", ExportConfig(precisions=("fp32",)))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == folder
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "b").iterdir()} == {
        name: file for name in ("guard.json", "tokenizer.json", "model.onnx", "MODEL_CARD.md")}


def _bare_encoder(tiny_bert, out):
    """The tiny BERT's encoder saved as a BertModel: a checkpoint with no classification head in its files."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    BertModel(BertConfig.from_pretrained(tiny_bert)).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(out)
    return out


def test_a_checkpoint_without_a_trained_head_is_refused_unless_allowed(tiny_bert, tmp_path):
    bare = _bare_encoder(tiny_bert, tmp_path / "bare")
    with pytest.raises(ExportError, match=r"no weights for classifier\.bias, classifier\.weight.*"
                                          r"--allow-untrained-head"):
        export_bundle(bare, tmp_path / "b")
    assert not (tmp_path / "b").exists()
    manifest = export_bundle(bare, tmp_path / "b", ExportConfig(allow_untrained_head=True, precisions=("fp32",)))
    assert manifest.artifacts[0].parity.passed


def _config(id2label):
    return SimpleNamespace(id2label=id2label)


@pytest.mark.parametrize("id2label,given,want", [
    ({0: "safe", 1: "unsafe"}, None, 1),
    ({0: "harmful", 1: "harmless"}, None, 0),
    ({0: " Unsafe", 1: "BENIGN"}, None, 0),
    ({0: "1", 1: "0"}, None, 0),
    ({0: "negative", 1: "toxic"}, "toxic", 1),
    ({0: "negative", 1: "toxic"}, "NEGATIVE", 0),
    ({0: "harmful", 1: "unsafe"}, "0", 0),
    ({0: "harmful", 1: "unsafe"}, 1, 1),
])
def test_the_unsafe_index_follows_the_label_names(id2label, given, want):
    assert unsafe_index(_config(id2label), given) == want


def test_hugging_faces_default_label_names_mean_index_1_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="guard_sdk.export.checkpoint"):
        assert unsafe_index(_config({0: "LABEL_0", 1: "LABEL_1"})) == 1
    assert "LABEL_0" in caplog.text and "--unsafe-label" in caplog.text


@pytest.mark.parametrize("id2label,given,message", [
    ({0: "harmful", 1: "unsafe"}, None, "both mean unsafe"),
    ({0: "safe", 1: "benign"}, None, "both mean safe"),
    ({0: "LABEL_0", 1: "toxic"}, None, "'LABEL_0' is not a label name guard-sdk knows"),
    ({0: "negative", 1: "positive"}, None, "'negative' is not a label name guard-sdk knows"),
    ({0: "safe", 1: "unsafe"}, "toxic", "'toxic' names neither label"),
    ({0: "safe", 1: "unsafe"}, 2, "'2' names neither label"),
])
def test_ambiguous_label_names_are_refused_with_how_to_set_them(id2label, given, message):
    with pytest.raises(ExportError, match=message) as info:
        unsafe_index(_config(id2label), given)
    if given is None:
        assert 'config.json: "id2label": {"0": "safe", "1": "unsafe"}' in str(info.value)
        assert "--unsafe-label NAME|INDEX" in str(info.value)
    else:
        assert "pass one of those names, or the index 0 or 1" in str(info.value)


def test_inverted_label_names_export_with_the_right_polarity(tiny_bert, bert_bundle, tmp_path):
    """{0: harmful, 1: harmless}: the unsafe logit is 0, and the verdicts are those of the original model."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    with torch.no_grad():
        for p in model.classifier.parameters():
            p.copy_(p.flip(0).clone())
    model.config.id2label, model.config.label2id = {0: "harmful", 1: "harmless"}, {"harmful": 0, "harmless": 1}
    model.save_pretrained(tmp_path / "ckpt")
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(tmp_path / "ckpt")
    manifest = export_bundle(tmp_path / "ckpt", tmp_path / "b", ExportConfig(precisions=("fp32",)))
    assert manifest.unsafe_index == 0 and manifest.labels == ["unsafe", "safe"]
    flipped = Guard.load(tmp_path / "b").classify_batch(TEXTS)
    original = Guard.load(bert_bundle, precision="fp32").classify_batch(TEXTS)
    assert [v.unsafe for v in flipped] == [v.unsafe for v in original] == [True] * 12 + [False] * 12
    assert np.allclose([v.score for v in flipped], [v.score for v in original], atol=1e-5)
    with pytest.raises(ExportError, match="both mean unsafe"):
        model.config.id2label = {0: "harmful", 1: "unsafe"}
        model.save_pretrained(tmp_path / "ckpt")
        export_bundle(tmp_path / "ckpt", tmp_path / "c")


def _windows(owners):
    return [Window(np.zeros(1, np.int64), np.zeros(1, np.int64), owner) for owner in owners]


def test_windows_within_the_tolerance_of_the_threshold_are_not_judged_on_their_decision():
    """A reference that sits on the threshold: the artifact's small moves flip 3 of 5 decisions, all within
    the tolerance, so they are excluded and counted as such, not failed as 40% agreement."""
    reference = np.array([0.51, 0.48, 0.5, 0.9, 0.1])
    candidate = np.array([0.49, 0.51, 0.49, 0.88, 0.12])
    parity = measure(reference, candidate, ParityInputs(_windows(range(5)), texts=5), 0.5, 0.05, 0.98)
    assert parity.passed and parity.agreement == 1.0
    assert (parity.counted_windows, parity.excluded_windows) == (2, 3)
    assert parity.max_abs_diff == pytest.approx(0.03)


def test_an_artifact_that_flips_decisions_on_the_sample_fails():
    """22 fixed windows agree; 5 of the sample's 100 decisive windows flip: 95% agreement, not 98%."""
    reference = np.concatenate([np.full(22, 0.1), np.full(50, 0.9), np.full(50, 0.05)])
    candidate = reference.copy()
    candidate[30:35] = 0.3
    inputs = ParityInputs(_windows([*range(22), *range(22, 122)]), texts=122, sample_texts=100, sample_windows=100,
                          labels=(1,) * 50 + (0,) * 50)
    parity = measure(reference, candidate, inputs, 0.5, 0.05, 0.98)
    assert not parity.passed
    assert parity.agreement == pytest.approx(117 / 122) and parity.counted_windows == 122
    # the bound on |ΔP| is the fixed texts' (0 here); the sample's 0.6 is recorded, and the flips decide
    assert parity.max_abs_diff == 0.0 and parity.sample_max_abs_diff == pytest.approx(0.6)
    assert (parity.sample_texts, parity.sample_windows) == (100, 100)
    assert parity.sample_quality == {"rows": 100, "reference": {"accuracy": 1.0, "f1": 1.0},
                                     "artifact": {"accuracy": 0.95, "f1": pytest.approx(90 / 95)}}


def test_the_sample_is_capped_the_same_way_every_time():
    rows = [(f"text {i}", None, i % 2) for i in range(50)]
    picked = sample_rows(rows, 20)
    assert picked == sample_rows(rows, 20) and len(picked) == 20 and len(set(picked)) == 20
    assert [rows.index(r) for r in picked] == sorted(rows.index(r) for r in picked)  # in the file's order
    assert sample_rows(rows, 500) == tuple(rows)


def test_parity_is_checked_on_the_labelled_sample_and_recorded(tiny_bert, tmp_path):
    rows = [*LABELLED, ("Tell me a joke.", "Why did the chicken cross the road?", None)]
    manifest = export_bundle(tiny_bert, tmp_path / "b", ExportConfig(parity_data=tuple(rows), **TINY_INT8))
    for artifact in manifest.artifacts:
        p = artifact.parity
        assert (p.texts, p.sample_texts) == (20 + 25, 25) and p.sample_windows == 25
        assert p.counted_windows + p.excluded_windows == p.windows
        assert p.sample_quality["rows"] == 24
    fp32 = manifest.artifacts[0].parity
    assert fp32.sample_quality["reference"] == fp32.sample_quality["artifact"] == {"accuracy": 1.0, "f1": 1.0}
    raw = json.loads((tmp_path / "b" / "guard.json").read_text())["artifacts"][0]["parity"]
    assert raw["sample_texts"] == 25 and raw["sample_quality"]["rows"] == 24
    capped = export_bundle(tiny_bert, tmp_path / "c", ExportConfig(parity_data=tuple(rows), parity_rows=10,
                                                                   precisions=("fp32",)))
    assert capped.artifacts[0].parity.sample_texts == 10


def test_bundles_written_before_the_parity_sample_still_read(bundle_copy):
    path = bundle_copy / "guard.json"
    data = json.loads(path.read_text())
    new = ("sample_texts", "sample_windows", "counted_windows", "excluded_windows", "sample_quality")
    for artifact in data["artifacts"]:
        artifact["parity"] = {k: v for k, v in artifact["parity"].items() if k not in new}
    path.write_text(json.dumps(data))
    parity = read_manifest(bundle_copy).artifacts[0].parity
    assert parity.sample_texts is None and parity.counted_windows is None and parity.passed
    assert Guard.load(bundle_copy).classify("What is the capital of Australia?").windows == 1


def _recipe_export(tiny_bert, tmp_path, bundle):
    """A run's model folder, its dev split (the 24 test texts), PyTorch's dev scores and report, and a recipe that
    exports to ``bundle``: what ``export_and_evaluate`` takes."""
    import datasets

    from guard_sdk.training.evaluate import levels_of, report

    model_dir = Path(shutil.copytree(tiny_bert, tmp_path / "run" / "model"))
    dev = datasets.Dataset.from_dict({"prompt": TEXTS, "response": [None] * 24, "label": [1] * 12 + [0] * 12,
                                      "source": ["tiny"] * 24})
    scores = np.array([0.9] * 12 + [0.1] * 12)
    dev_report = report(dev["label"], scores, dev["source"], levels_of(dev), 0.5)
    export = SimpleNamespace(bundle=str(bundle), name="tiny", formats=["onnx"], precisions=["fp32"],
                             max_length=32, int8_tolerance=0.05, int8_min_agreement=0.98,
                             views=["normalized", "payload"])
    recipe = SimpleNamespace(export=export, train=SimpleNamespace(max_length=32),
                             calibration=SimpleNamespace(rule="max_f1", threshold=None, max_fpr=None, balance="none"))
    return model_dir, dev, scores, dev_report, recipe


def test_recipe_exports_check_parity_on_their_dev_split_and_never_replace_the_run(tiny_bert, tmp_path):
    from guard_sdk.training.evaluate import calibrate, score_with_guard
    from guard_sdk.training.finetune import export_and_evaluate

    model_dir, dev, scores, dev_report, recipe = _recipe_export(tiny_bert, tmp_path, tmp_path / "run")
    export = recipe.export
    with pytest.raises(FolderInUseError, match="is the checkpoint being exported or holds it"):
        export_and_evaluate(recipe, model_dir, {"dev": dev}, scores, dev_report, False)
    assert (model_dir / "config.json").is_file()
    export.bundle = str(tmp_path / "bundle")
    export_and_evaluate(recipe, model_dir, {"dev": dev}, scores, dev_report, False)
    parity = read_manifest(tmp_path / "bundle").artifacts[0].parity
    assert parity.sample_texts == 24 and parity.sample_quality["rows"] == 24
    # the threshold is the rule applied to the bundle's own dev scores (its views, its artifact), not PyTorch's 0.5
    guard = Guard.load(tmp_path / "bundle")
    assert guard.threshold == calibrate(dev["label"], score_with_guard(guard, dev, False), "max_f1") != 0.5
    assert f"The threshold, {guard.threshold:.4g}, is the calibration rule (max_f1)" in (
        tmp_path / "bundle" / "MODEL_CARD.md").read_text()


def test_a_bundle_exported_again_to_other_bytes_is_judged_on_its_own_dev_scores(tiny_bert, tmp_path, monkeypatch):
    import torch
    import transformers

    import guard_sdk.export
    from guard_sdk.training.evaluate import levels_of, report, score_with_guard
    from guard_sdk.training.finetune import export_and_evaluate

    # the second export (at the calibrated threshold) comes out of a checkpoint with other classifier weights, as
    # if quantization had landed elsewhere: the figures written must be that artifact's, not the first one's
    shifted = tmp_path / "shifted"
    model = transformers.AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.randn(model.classifier.weight.shape,
                                                  generator=torch.Generator().manual_seed(0)))
    model.save_pretrained(shifted)
    shutil.copy(Path(tiny_bert) / "tokenizer.json", shifted)
    real, calls = guard_sdk.export.export_bundle, []

    def export_twice(checkpoint, out, config):
        calls.append(config.threshold)
        return real(shifted if len(calls) > 1 else checkpoint, out, config)

    monkeypatch.setattr(guard_sdk.export, "export_bundle", export_twice)
    model_dir, dev, scores, dev_report, recipe = _recipe_export(tiny_bert, tmp_path, tmp_path / "bundle")
    _, reports = export_and_evaluate(recipe, model_dir, {"dev": dev}, scores, dev_report, False)
    assert len(calls) == 2 and calls[0] is None
    guard = Guard.load(tmp_path / "bundle")
    own = score_with_guard(guard, dev, False)
    real(tiny_bert, tmp_path / "first", ExportConfig(formats=("onnx",), precisions=("fp32",), max_length=32))
    before = score_with_guard(Guard.load(tmp_path / "first"), dev, False)
    assert not np.allclose(before, own, atol=1e-3)  # the second artifact does score otherwise
    assert reports["dev"]["overall"] == report(dev["label"], own, dev["source"], levels_of(dev),
                                               guard.threshold)["overall"]
    written = json.loads((tmp_path / "run" / "eval_dev_bundle.json").read_text())
    assert written["overall"] == reports["dev"]["overall"]


@pytest.mark.parametrize("config,message", [
    (ExportConfig(formats=("tflite",)), "unknown format 'tflite'"),
    (ExportConfig(precisions=("fp16",)), "no format named has precision 'fp16': onnx has fp32, int8"),
    (ExportConfig(threshold=1.5), "threshold must lie in"),
    (ExportConfig(window_overlap=500), "window_overlap 500"),
    (ExportConfig(views=("normalized", "normalized")), "views must name each of normalized, decoded, payload"),
])
def test_bad_export_settings_are_refused(tiny_bert, tmp_path, config, message):
    with pytest.raises(ExportError, match=message):
        export_bundle(tiny_bert, tmp_path / "b", config)
    assert not (tmp_path / "b").exists()


def test_checkpoint_that_is_not_a_classifier_is_refused(tmp_path):
    with pytest.raises(ExportError, match="cannot load a sequence-classification checkpoint"):
        export_bundle(tmp_path, tmp_path / "b")


def test_model_card_states_the_measured_parity(bert_bundle):
    from huggingface_hub import ModelCard

    card = (bert_bundle / "MODEL_CARD.md").read_text()
    manifest = verify_bundle(bert_bundle)
    meta = ModelCard.load(bert_bundle / "MODEL_CARD.md").data  # YAML front matter, as the Hub reads it
    assert meta.library_name == "guard-sdk" and "onnx" in meta.tags and meta.eval_results is None
    for a in manifest.artifacts:
        assert f"| `{a.path}` | onnx | {a.precision} |" in card
        assert f"{a.parity.max_abs_diff:.2e}" in card


def test_model_card_lists_the_training_sources_licences_and_says_when_commercial_use_is_barred(bert_bundle):
    import dataclasses

    from guard_sdk.export.model_card import render_model_card

    manifest = verify_bundle(bert_bundle)
    training = {"recipe": "r", "base_model": "m", "command": "guard-sdk finetune --recipe r.yaml", "threshold": 0.5,
                "threshold_rule": "max_f1 on dev",
                "data": {"train": {"advbench:strings": {"unsafe": 3}, "alpaca_eval": {"safe": 2},
                                   "toxicchat": {"safe": 1}, "harmaug:qwen": {"unsafe": 1}, "mine.csv": {"safe": 1}},
                         "holdout": {"xstest": {"safe": 1}}}}
    card = render_model_card(dataclasses.replace(manifest, source={**manifest.source, "training": training}))
    assert "| `advbench` | MIT |\n" in card and "| `alpaca_eval` | CC BY-NC 4.0 |\n" in card
    assert "| `mine.csv` | as its owner gives it |\n" in card and "| `harmaug` | generated by" in card
    assert "| `xstest` |" not in card.split("Licences of the training sources")[1]  # evaluated on, not trained on
    assert "**Not for commercial use**: trained on `alpaca_eval`, `toxicchat`, whose licences" in card
    mit_only = {**training, "data": {"train": {"advbench:strings": {"unsafe": 3}}}}
    card = render_model_card(dataclasses.replace(manifest, source={**manifest.source, "training": mit_only}))
    assert "| `advbench` | MIT |" in card and "Not for commercial use" not in card


def test_deberta_int8_quantizes_its_shared_projection_weights(deberta_bundle):
    """DeBERTa's query/key projections reach their second MatMul through an Identity; export folds it so ONNX
    Runtime quantizes that use too. Only the relative-position table (a LayerNorm input) stays fp32."""
    import onnx

    int8 = verify_bundle(deberta_bundle).artifacts[1]
    assert int8.quantization["shared_weights_folded"] > 0
    model = onnx.load(str(deberta_bundle / int8.path))
    fp32_matrices = [t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT
                     and len(t.dims) == 2]
    assert fp32_matrices == ["deberta.encoder.rel_embeddings.weight"]
