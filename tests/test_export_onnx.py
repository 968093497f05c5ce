"""ONNX export: dynamic axes, parity recorded and enforced, nothing left behind on failure."""

import json

import numpy as np
import onnxruntime as ort
import pytest

from guard_sdk import ExportError, Guard, ParityError
from guard_sdk.bundle import verify_bundle
from guard_sdk.export import ExportConfig, export_bundle

from .conftest import SAFE_TEXTS, TINY_INT8, UNSAFE_TEXTS


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


def test_existing_output_is_kept_unless_overwrite(tiny_bert, bert_bundle, tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="already exists"):
        export_bundle(tiny_bert, out)
    assert (out / "keep.txt").read_text() == "mine"
    export_bundle(tiny_bert, out, ExportConfig(overwrite=True, **TINY_INT8))
    assert json.loads((out / "guard.json").read_text())["name"] == "b" and not (out / "keep.txt").exists()


@pytest.mark.parametrize("config,message", [
    (ExportConfig(formats=("tflite",)), "unknown format 'tflite'"),
    (ExportConfig(precisions=("fp16",)), "no format named has precision 'fp16': onnx has fp32, int8"),
    (ExportConfig(threshold=1.5), "threshold must lie in"),
    (ExportConfig(window_overlap=500), "window_overlap 500"),
])
def test_bad_export_settings_are_refused(tiny_bert, tmp_path, config, message):
    with pytest.raises(ExportError, match=message):
        export_bundle(tiny_bert, tmp_path / "b", config)
    assert not (tmp_path / "b").exists()


def test_checkpoint_that_is_not_a_classifier_is_refused(tmp_path):
    with pytest.raises(ExportError, match="cannot load a sequence-classification checkpoint"):
        export_bundle(tmp_path, tmp_path / "b")


def test_model_card_states_the_measured_parity(bert_bundle):
    card = (bert_bundle / "MODEL_CARD.md").read_text()
    manifest = verify_bundle(bert_bundle)
    for a in manifest.artifacts:
        assert f"| `{a.path}` | onnx | {a.precision} |" in card
        assert f"{a.parity.max_abs_diff:.2e}" in card


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
