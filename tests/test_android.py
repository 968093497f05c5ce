"""The Android demo's Python side (test vectors, the app's assets, the app's benchmark report) and its JVM module
(android_demo/guard-core), whose JUnit tests run here against vectors of the default guard, a tiny BERT bundle
and a prompt-tuned one."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from guard_sdk.android import (
    APP_RESULTS,
    APP_RUN,
    VECTOR_CASES,
    copy_assets,
    read_pulled,
    records_from_app,
    write_vectors,
)
from guard_sdk.bench.stats import latency_stats
from guard_sdk.cli import main
from guard_sdk.errors import ArtifactChangedError, FolderInUseError, InputError, UnknownFormatError
from guard_sdk.guard import default_bundle_path
from guard_sdk.signing import generate_keys, sign_bundle

ROOT = Path(__file__).resolve().parent.parent
CORE_TESTS = ROOT / "android_demo" / "guard-core" / "test.sh"


@pytest.fixture(scope="module")
def prompt_tuned_bundle(tiny_bert, tmp_path_factory) -> Path:
    """The tiny BERT with 3 prompt-tuning vectors baked in as [GUARD_PROMPT_i] tokens, exported to ONNX."""
    from peft import PromptTuningConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from guard_sdk.export import ExportConfig, export_bundle
    from guard_sdk.training.dapt.prompt_baking import bake_prompt

    root = tmp_path_factory.mktemp("prompt-tuned")
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    peft_model = get_peft_model(model, PromptTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=3))
    baked = bake_prompt(peft_model, tokenizer)
    baked.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    export_bundle(root / "model", root / "bundle", ExportConfig(formats=("onnx",), precisions=("fp32",)))
    return root / "bundle"


def _vectors(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_vectors_hold_every_case_with_windows_masks_and_a_verdict(bert_bundle, tmp_path):
    data = _vectors(write_vectors(bert_bundle, tmp_path / "v.json"))
    cases = {c["id"]: c for c in data["cases"]}
    assert list(cases) == [c[0] for c in VECTOR_CASES]
    assert data["bundle"]["max_length"] == 64 and data["bundle"]["backend"] == "onnxruntime"
    assert cases["empty"]["prompt_ids"] == [] and len(cases["empty"]["windows"]) == 1
    assert cases["empty"]["windows"][0]["input_ids"] == [2, 3]  # [CLS] [SEP] of the tiny vocabulary
    long = cases["over_max_length"]
    assert len(long["windows"]) > 1 and all(len(w["input_ids"]) <= 64 for w in long["windows"])
    assert len(long["logits"]) == len(long["windows"]) == len(long["window_scores"])
    assert long["score"] == pytest.approx(max(long["window_scores"]), abs=1e-6)
    pair = cases["pair"]["windows"][0]
    assert pair["token_type_ids"][-1] == 1 and pair["token_type_ids"][0] == 0
    padded = long["padded"]
    assert {len(row) for row in padded["input_ids"]} == {64}
    assert padded["attention_mask"][-1] == [1] * len(long["windows"][-1]["input_ids"]) + [0] * (
        64 - len(long["windows"][-1]["input_ids"]))
    assert 0 in padded["attention_mask"][-1]  # the last window is short, so padding shows in the mask
    beside = [w for w in cases["sentences_pair"]["windows"] if w["view"] == "sentences"]
    assert len(beside) == 2 and all(w["token_type_ids"][-1] == 1 for w in beside)  # two sentences, each in a pair


def test_vectors_of_a_bundle_with_categories_hold_their_scores_and_each_policys_verdict(categories_bundle,
                                                                                       bert_bundle, tmp_path):
    from guard_sdk import Guard

    data = _vectors(write_vectors(categories_bundle, tmp_path / "v.json"))
    assert data["version"] == 6 and data["policies"][0] == {"allow": ["violent_crimes"]} and len(data["policies"]) == 4
    guard = Guard.load(categories_bundle)
    for case in data["cases"]:
        verdict = guard.classify(case["prompt"], case["response"])
        assert case["categories"] == pytest.approx(verdict.categories)
        assert case["violations"] == list(verdict.violations)
        assert len(case["under_policies"]) == 4
    said = [c["under_policies"][2]["unsafe"] for c in data["cases"]]  # violent_crimes at 0.05: stricter
    assert sum(said) >= sum(c["unsafe"] for c in data["cases"])
    plain = _vectors(write_vectors(bert_bundle, tmp_path / "plain.json"))  # no categories: no policies to try
    assert plain["policies"] == [] and all(c["categories"] == {} and c["violations"] == [] for c in plain["cases"])


def test_prompt_tuned_vectors_open_every_window_with_the_virtual_tokens(prompt_tuned_bundle, tmp_path):
    data = _vectors(write_vectors(prompt_tuned_bundle, tmp_path / "v.json"))
    added = json.loads((prompt_tuned_bundle / "tokenizer.json").read_text())["added_tokens"]
    virtual = sorted(t["id"] for t in added if t["content"].startswith("[GUARD_PROMPT_"))
    assert len(virtual) == 3
    assert all(w["input_ids"][:3] == virtual for c in data["cases"] for w in c["windows"])


@pytest.mark.slow
def test_the_jvm_core_matches_python_on_every_vector(bert_bundle, bert_mobile, prompt_tuned_bundle,
                                                    categories_bundle, tmp_path):
    """The JUnit tests of android_demo/guard-core (Debian's JDK and JUnit, `make jvm-setup`): ids, types and
    masks equal, P(unsafe), category scores, violations and verdicts equal (under every policy of the vectors
    too), on four bundles' vectors; and every bundle refusal, on copies of a bundle with model.int8.pte."""
    vectors = tmp_path / "vectors"
    for name, bundle in (("default", default_bundle_path()), ("tiny-bert", bert_bundle),
                         ("prompt-tuned", prompt_tuned_bundle), ("categories", categories_bundle)):
        write_vectors(bundle, vectors / f"{name}.json")
    # SignatureTest: a copy signed here (cryptography) that the JDK's Ed25519 must verify with this public key.
    shutil.copytree(bert_mobile, vectors / "signed")
    generate_keys(tmp_path / "key.pem", vectors / "trusted.pub.pem")
    sign_bundle(vectors / "signed", tmp_path / "key.pem")
    done = subprocess.run(["bash", str(CORE_TESTS), str(vectors), str(bert_mobile)],
                          capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    found = int(next(line for line in output.splitlines() if "tests successful" in line).split()[1])
    assert found > 4 * len(VECTOR_CASES) and "[         0 tests failed          ]" in output
    assert "prompt-tuned.json pair_both_long" in output and "tiny-bert.json emoji" in output
    assert "categories.json pair" in output
    assert "aBundleSignedInPythonOpensWithItsKeyAndTheSameKeyId()" in output


@pytest.mark.slow
def test_assets_are_the_checked_files_byte_for_byte_and_replace_the_old(bert_mobile, tmp_path):
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "model.fp32.pte").write_bytes(b"old")  # what an earlier copy left: replaced
    (assets / "guard.json").write_text("{}")
    copied = copy_assets(bert_mobile, assets)
    assert sorted(p.name for p in assets.iterdir()) == ["guard.json", "model.int8.pte", "tokenizer.json"]
    for path in copied:
        assert path.read_bytes() == (bert_mobile / path.name).read_bytes()
    assert copy_assets(bert_mobile, assets, precision="int4")[-1].name == "model.int4.pte"
    assert sorted(p.name for p in assets.iterdir()) == ["guard.json", "model.int4.pte", "tokenizer.json"]


@pytest.mark.slow
@pytest.mark.parametrize("held", ["stale/model.pte", "build.gradle", "guard.json/x", None])
def test_assets_refuse_a_folder_that_holds_anything_but_a_copied_bundle(bert_mobile, tmp_path, held):
    """The old test had a stale/ folder deleted with the rest; any file an earlier copy did not write stays."""
    assets = tmp_path / "assets"
    assets.mkdir()
    if held is not None:
        (assets / held).parent.mkdir(parents=True, exist_ok=True)
        (assets / held).write_text("mine")
    (assets / "model.int8.pte").write_bytes(b"old")  # None: a .pte alone, with no guard.json of an earlier copy
    with pytest.raises(FolderInUseError, match=r"assets holds .* guard-sdk android assets did not copy"):
        copy_assets(bert_mobile, assets)
    assert held is None or (assets / held).read_text() == "mine"
    assert (assets / "model.int8.pte").read_bytes() == b"old"
    out = io.StringIO()
    assert main(["android", "assets", "-b", str(bert_mobile), "-o", str(assets)], out=out) == 2


@pytest.mark.slow
def test_assets_refuse_a_bundle_without_a_pte_and_a_changed_tokenizer(bert_bundle, bert_mobile, tmp_path):
    with pytest.raises(UnknownFormatError, match="no ExecuTorch int8 artifact.*--formats executorch"):
        copy_assets(bert_bundle, tmp_path / "a")
    with pytest.raises(UnknownFormatError, match="ONNX only: make android-assets"):
        copy_assets(default_bundle_path(), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()

    import shutil

    damaged = Path(shutil.copytree(bert_mobile, tmp_path / "damaged"))
    text = (damaged / "tokenizer.json").read_text(encoding="utf-8")
    (damaged / "tokenizer.json").write_text(text.replace('"[UNK]"', '"[UNQ]"', 1), encoding="utf-8")
    with pytest.raises(ArtifactChangedError, match="tokenizer.json"):
        copy_assets(damaged, tmp_path / "c")
    assert not (tmp_path / "c").exists()


def _pulled(folder: Path, latencies: list[float], load_status: int = 0) -> Path:
    """What the app's benchmark screen writes (android_demo/app BenchmarkActivity), by hand."""
    folder.mkdir(parents=True, exist_ok=True)
    device = {"device": "google", "arch": "Pixel 8", "os": "Android 15", "totalMem": 8e9, "availMem": 4e9}
    model = {"name": "guard-sdk-default", "backend": "xnnpack", "quantization": "int8"}
    metrics = {"model_load_time(ms)": 41.5, "load_status": load_status, "first_inference_latency(ms)": 19.0,
               "avg_inference_latency(ms)": sum(latencies) / len(latencies),
               "trimmean_inference_latency(ms)": 5.0, "p50_inference_latency(ms)": 5.0,
               "p90_inference_latency(ms)": 6.0, "ram_pss_usage(mb)": 48.0}
    results = [{"benchmarkModel": model, "metric": k, "actualValue": v, "targetValue": 0.0, "deviceInfo": device}
               for k, v in metrics.items()]
    (folder / APP_RESULTS).write_text(json.dumps(results))
    run = {"bundle": "guard-sdk-default", "artifact": "model.int8.pte", "artifact_bytes": 23268104,
           "precision": "int8", "threads": 4, "tokens": 128, "tokens_per_input": 128, "windows_per_input": 1,
           "window_lengths": [128], "warmup": 5, "latencies_ms": latencies}
    (folder / APP_RUN).write_text(json.dumps(run))
    return folder


def test_the_apps_json_becomes_a_bench_record_with_the_same_statistics(tmp_path):
    latencies = [5.0, 4.0, 6.0, 5.5, 30.0, 4.5, 5.2, 4.8, 5.1, 4.9]
    results, run = read_pulled(_pulled(tmp_path / "pulled", latencies))
    [record] = records_from_app(results, run)
    expected = latency_stats([t / 1e3 for t in latencies])
    assert record["latency"] == pytest.approx(expected)
    assert (record["load_ms"], record["first_call_ms"]) == (41.5, 19.0)
    assert record["peak_rss_bytes"] == 48 * 1024 * 1024 and record["backend"] == "executorch-android"
    assert record["device"]["arch"] == "Pixel 8"

    out = io.StringIO()
    assert main(["android", "report", str(tmp_path / "pulled"), "--out", str(tmp_path / "report")], out=out) == 0
    table = (tmp_path / "report" / "RESULTS.md").read_text()
    assert "google Pixel 8" in table and "| executorch-android |" in table and f"{expected['p50_ms']:.2f}" in table
    assert json.loads((tmp_path / "report" / "results.json").read_text())["records"][0]["tokens_per_input"] == 128


def test_a_failed_load_or_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="could not load the model"):
        records_from_app(*read_pulled(_pulled(tmp_path / "failed", [5.0], load_status=34)))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / APP_RESULTS).write_text("[]")
    with pytest.raises(InputError, match="guard_run.json is missing"):
        read_pulled(tmp_path / "half")
    (tmp_path / "half" / APP_RUN).write_text("{not json")
    with pytest.raises(InputError, match="not JSON"):
        read_pulled(tmp_path / "half")
    with pytest.raises(InputError, match="is not a folder"):
        read_pulled(tmp_path / "half" / APP_RUN)


@pytest.mark.parametrize("file,edit,message", [
    (APP_RESULTS, lambda r: [m for m in r if m["metric"] != "ram_pss_usage(mb)"], "lacks the metric ram_pss_usage"),
    (APP_RUN, lambda r: {k: v for k, v in r.items() if k != "bundle"}, "'bundle' is a required property"),
    (APP_RUN, lambda r: {**r, "latencies_ms": [0, 0]}, r"\$\.latencies_ms\[\d\]: 0 is less than or equal to"),
    (APP_RUN, lambda r: {**r, "tokens": "128"}, r"\$\.tokens: '128' is not of type 'integer'"),
])
def test_a_pulled_file_cut_short_or_edited_is_refused_with_its_field(tmp_path, file, edit, message):
    folder = _pulled(tmp_path / "pulled", [5.0, 6.0])
    (folder / file).write_text(json.dumps(edit(json.loads((folder / file).read_text()))))
    with pytest.raises(InputError, match=message):
        records_from_app(*read_pulled(folder))


@pytest.mark.slow
def test_the_cli_copies_assets_and_writes_vectors(bert_bundle, bert_mobile, tmp_path, capsys):
    out = io.StringIO()
    assert main(["android", "assets", "-b", str(bert_mobile), "--assets", str(tmp_path / "assets")], out=out) == 0
    assert out.getvalue().count("copied ") == 3
    assert main(["android", "assets", "--assets", str(tmp_path / "x")], out=out) == 2  # the embedded default guard
    assert "make android-assets" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert main(["android", "vectors", "-b", str(bert_bundle), "-o", str(tmp_path / "v.json")], out=out) == 0
    assert _vectors(tmp_path / "v.json")["bundle"]["name"] == "tiny-bert-guard"


def test_the_app_builds_against_the_executorch_that_exports_the_pte():
    """A .pte loads in the runtime of its exporter's version: gradle.properties must follow constraints.txt."""
    pinned = next(line.split("==")[1].strip() for line in (ROOT / "constraints.txt").read_text().splitlines()
                  if line.startswith("executorch=="))
    props = dict(line.split("=", 1) for line in (ROOT / "android_demo" / "gradle.properties").read_text().splitlines()
                 if "=" in line and not line.startswith("#"))
    assert props["executorchVersion"] == pinned
