"""The bundle contract: guard.json schema, hashes, and a refusal that names the problem and the file."""

import json

import pytest

from guard_sdk import (
    ArtifactChangedError,
    ArtifactMissingError,
    Guard,
    ManifestError,
    SchemaVersionError,
    UnknownFormatError,
)
from guard_sdk.bundle import Manifest, read_manifest, verify_bundle, write_manifest


def _edit_manifest(bundle, change):
    path = bundle / "guard.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_manifest_round_trips_through_dict_and_file(bundle_copy):
    manifest = read_manifest(bundle_copy)
    assert Manifest.from_dict(manifest.to_dict()) == manifest
    write_manifest(bundle_copy, manifest)
    assert read_manifest(bundle_copy) == manifest


def test_exported_manifest_has_the_documented_fields(bert_bundle):
    data = json.loads((bert_bundle / "guard.json").read_text())
    assert data["schema_version"] == 3 and data["categories"] == []  # a 2-label model: no category head
    assert data["views"]["names"] == ["normalized", "payload", "sentences"] and data["source"]["max_positions"] == 128
    assert data["labels"] == ["safe", "unsafe"] and data["unsafe_index"] == 1
    assert data["threshold"] == 0.5 and data["max_length"] == 64
    assert data["text"]["pair_encoding"] == "tokenizer_pair"
    assert data["text"]["prompt_truncation_side"] == "left"
    assert data["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [(a["format"], a["precision"], a["path"]) for a in data["artifacts"]] == [
        ("onnx", "fp32", "model.onnx"), ("onnx", "int8", "model.int8.onnx")]
    for a in data["artifacts"]:
        assert a["bytes"] == (bert_bundle / a["path"]).stat().st_size
        assert set(a["parity"]) == {"reference", "texts", "windows", "max_abs_diff", "agreement", "tolerance",
                                    "min_agreement", "measured", "note", "sample_texts", "sample_windows",
                                    "counted_windows", "excluded_windows"}  # no sample: no sample figures
        assert a["parity"]["sample_texts"] == a["parity"]["sample_windows"] == 0
        assert a["parity"]["measured"] is True and "batch" not in a and "spec" not in a
    assert verify_bundle(bert_bundle).name == "tiny-bert-guard"


def test_missing_manifest_is_refused(tmp_path):
    with pytest.raises(ManifestError, match="guard.json: missing") as info:
        Guard.load(tmp_path)
    assert info.value.path == tmp_path / "guard.json"


def test_missing_bundle_folder_is_refused(tmp_path):
    with pytest.raises(ManifestError, match="no such bundle folder"):
        Guard.load(tmp_path / "nowhere")


def test_manifest_that_is_not_json_is_refused(bundle_copy):
    (bundle_copy / "guard.json").write_bytes(b"{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        Guard.load(bundle_copy)


def test_unknown_schema_version_is_refused(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d.update(schema_version=99))
    with pytest.raises(SchemaVersionError, match="schema_version 99 is not supported") as info:
        Guard.load(bundle_copy)
    assert info.value.path.name == "guard.json"


def test_a_version_1_bundle_loads_and_has_no_categories(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: (d.update(schema_version=1), d.pop("categories"), d.pop("views")))
    guard = Guard.load(bundle_copy)
    assert guard.manifest.schema_version == 1 and guard.categories == []
    verdict = guard.classify("How do I make a pipe bomb at home?")
    assert verdict.categories == {} and verdict.violations == () and verdict.unsafe
    _edit_manifest(bundle_copy, lambda d: d.update(categories=[]))
    with pytest.raises(ManifestError, match="should not be valid"):  # version 1 holds no categories
        Guard.load(bundle_copy)
    _edit_manifest(bundle_copy, lambda d: (d.pop("categories"), d.update(schema_version=2,
                                                                         views={"names": [], "fold": {}})))
    with pytest.raises(ManifestError, match="should not be valid"):  # nor version 2 views
        Guard.load(bundle_copy)


@pytest.mark.parametrize("heads,message", [
    ([{"name": "hate", "index": 2, "threshold": 0.5}, {"name": "hate", "index": 3, "threshold": 0.5}],
     "two categories share one name"),
    ([{"name": "hate", "index": 3, "threshold": 0.5}], r"logits after the two labels' \(2, 3, ...\)"),
    ([{"name": "Hate!", "index": 2, "threshold": 0.5}], r"\$\.categories\[0\]\.name"),
    ([{"name": "hate", "index": 2, "threshold": 1.5}], r"\$\.categories\[0\]\.threshold"),
])
def test_a_bad_category_list_is_refused(bundle_copy, heads, message):
    _edit_manifest(bundle_copy, lambda d: d.update(categories=heads))
    with pytest.raises(ManifestError, match=message):
        Guard.load(bundle_copy)


def test_categories_the_model_has_no_logits_for_are_refused_when_scored(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d.update(categories=[{"name": "hate", "index": 2, "threshold": 0.5}]))
    guard = Guard.load(bundle_copy)
    with pytest.raises(ManifestError, match="lists 1 categories, but model.int8.onnx outputs 2 logits"):
        guard.classify("hello")


def test_schema_violation_names_the_field(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d.update(threshold=1.5))
    with pytest.raises(ManifestError, match=r"\$\.threshold"):
        Guard.load(bundle_copy)


def test_path_leaving_the_bundle_is_refused(bundle_copy):
    _edit_manifest(bundle_copy, lambda d: d["artifacts"][0].update(path="../elsewhere.onnx"))
    with pytest.raises(ManifestError, match="leaves the bundle folder"):
        Guard.load(bundle_copy)


def test_missing_artifact_is_refused_by_name(bundle_copy):
    (bundle_copy / "model.int8.onnx").unlink()
    with pytest.raises(ArtifactMissingError, match="model.int8.onnx") as info:
        Guard.load(bundle_copy, precision="int8")
    assert info.value.path == bundle_copy / "model.int8.onnx"


def test_tampered_artifact_with_the_same_size_is_refused(bundle_copy):
    path = bundle_copy / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactChangedError, match="sha256 differs") as info:
        Guard.load(bundle_copy, precision="fp32")
    assert info.value.path == path
    with pytest.raises(ArtifactChangedError):
        verify_bundle(bundle_copy)


def test_truncated_artifact_is_refused_on_size(bundle_copy):
    path = bundle_copy / "model.int8.onnx"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ArtifactChangedError, match="bytes, but guard.json recorded"):
        Guard.load(bundle_copy, precision="int8")


def test_changed_tokenizer_is_refused(bundle_copy):
    path = bundle_copy / "tokenizer.json"
    path.write_text(path.read_text().replace("[UNK]", "[UNQ]"))
    with pytest.raises(ArtifactChangedError, match="tokenizer.json"):
        Guard.load(bundle_copy)


def test_unknown_format_is_refused_and_named(bundle_copy):
    def to_tflite(d):
        for a in d["artifacts"]:
            a["format"] = "tflite"
    _edit_manifest(bundle_copy, to_tflite)
    with pytest.raises(UnknownFormatError, match=r"model.onnx \(tflite fp32\)"):
        Guard.load(bundle_copy)


def test_unknown_backend_and_absent_precision_are_refused(bert_bundle):
    with pytest.raises(UnknownFormatError, match="unknown backend 'tensorrt'"):
        Guard.load(bert_bundle, backend="tensorrt")
    with pytest.raises(UnknownFormatError, match="no 'fp16' artifact; it holds: fp32, int8"):
        Guard.load(bert_bundle, precision="fp16")


@pytest.mark.parametrize("parity,message", [
    ({"measured": False, "max_abs_diff": None, "agreement": None, "note": ""}, "too short|non-empty"),
    ({"max_abs_diff": None}, "None is not of type 'number'"),
])
def test_unmeasured_parity_needs_its_reason_and_measured_needs_figures(bundle_copy, parity, message):
    _edit_manifest(bundle_copy, lambda d: d["artifacts"][0]["parity"].update(parity))
    with pytest.raises(ManifestError, match=message):
        read_manifest(bundle_copy)
