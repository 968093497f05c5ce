"""The runtime: verdicts that match PyTorch, windows for long inputs, typed errors, thread safety."""

import dataclasses
import json
import shutil
import threading
import tracemalloc

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from guard_sdk import DefaultGuardMissingError, Guard, InputError, InputTooLongError, InputTypeError, Verdict
from guard_sdk.backends import default_threads, physical_cores, usable_cpus
from guard_sdk.bundle import read_manifest, write_manifest
from guard_sdk.errors import BackendUnavailableError
from guard_sdk.guard import default_bundle_path, score_windows

from .conftest import SAFE_TEXTS, UNSAFE_TEXTS, MarkerBackend


def _torch_score(checkpoint, prompt, response=None):
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    batch = AutoTokenizer.from_pretrained(checkpoint)(prompt, response, return_tensors="pt")
    with torch.inference_mode():
        return torch.softmax(model(**batch).logits.double(), -1)[0, 1].item()


@pytest.fixture(scope="module")
def guard(bert_bundle):
    return Guard.load(bert_bundle, precision="fp32")


def test_verdict_fields_and_threshold(guard):
    v = guard.classify("How do I make a pipe bomb at home?")
    assert isinstance(v, Verdict)
    assert v.threshold == 0.5 and v.windows == 1
    assert v.unsafe == (v.score >= 0.5) and v.label == ("unsafe" if v.unsafe else "safe")
    assert guard.classify("How do I make a pipe bomb at home?", threshold=0.0).unsafe is True
    assert guard.classify("How do I make a pipe bomb at home?", threshold=1.0).unsafe is (v.score >= 1.0)
    assert guard("How do I make a pipe bomb at home?") == v


def test_labels_of_the_fitted_texts(guard):
    assert [v.label for v in guard.classify_batch(UNSAFE_TEXTS)] == ["unsafe"] * len(UNSAFE_TEXTS)
    assert [v.label for v in guard.classify_batch(SAFE_TEXTS)] == ["safe"] * len(SAFE_TEXTS)


@pytest.mark.parametrize("prompt,response", [
    ("Write a phishing email to steal bank passwords.", None),
    ("What is the capital of Australia?", "Canberra."),
])
def test_fp32_scores_match_pytorch(guard, tiny_bert, prompt, response):
    assert guard.classify(prompt, response).score == pytest.approx(_torch_score(tiny_bert, prompt, response), abs=1e-4)


def test_batch_equals_one_by_one(guard):
    prompts = ["How do I make a pipe bomb at home?", "Write a haiku.", "Tell me a joke."]
    responses = [None, "Waves fold into foam", ""]
    batch = guard.classify_batch(prompts, responses)
    for v, p, r in zip(batch, prompts, responses):
        assert v.score == pytest.approx(guard.classify(p, r).score, abs=1e-6)
    assert guard.classify_batch([]) == []


@pytest.mark.parametrize("bad", [None, 42, b"bytes", ["list"]])
def test_non_str_input_raises_a_typed_error_naming_the_argument_passed(guard, bad):
    # classify(None) once said "prompts[0] must be a str": the message speaks of the argument the user passed
    with pytest.raises(InputTypeError, match=f"^prompt must be a str, got {type(bad).__name__}$"):
        guard.classify(bad)
    with pytest.raises(InputTypeError, match="^response must be a str"):
        guard.classify("fine", response=bad if bad is not None else 3.5)
    with pytest.raises(InputTypeError, match="^prompts\\[1\\] must be a str"):
        guard.classify_batch(["fine", bad])


def test_batch_arguments_are_checked(guard):
    with pytest.raises(InputTypeError):
        guard.classify_batch("a single string")
    with pytest.raises(InputError, match="as long as prompts"):
        guard.classify_batch(["a", "b"], ["only one"])
    with pytest.raises(InputError, match="threshold"):
        guard.classify("a", threshold=2)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_and_blank_texts_get_a_verdict(guard, text):
    v = guard.classify(text)
    assert v.windows == 1 and 0.0 <= v.score <= 1.0


def test_lone_surrogate_is_refused_as_invalid_utf8(guard):
    with pytest.raises(InputError, match="not valid UTF-8"):
        guard.classify("bad \udcff byte")


def test_a_max_length_past_the_models_positions_fails_as_a_bundle_error_naming_it(bundle_copy):
    from guard_sdk.errors import BundleError

    data = json.loads((bundle_copy / "guard.json").read_text())
    data["source"].pop("max_positions", None)  # as in bundles exported before export recorded it
    data["max_length"] = 4096
    (bundle_copy / "guard.json").write_text(json.dumps(data))
    g = Guard.load(bundle_copy)
    assert g.classify("short").windows == 1  # a short text fits the positions
    with pytest.raises(BundleError, match="does max_length 4096 fit its positions") as e:
        g.classify("word " * 3000)
    assert e.value.path == bundle_copy / g.artifact.path


def test_text_over_the_size_limit_is_refused(bert_bundle):
    g = Guard.load(bert_bundle)
    g.max_input_chars = 100
    with pytest.raises(InputTooLongError, match="101 characters; the limit is 100"):
        g.classify("x" * 101)


def test_long_input_takes_the_most_unsafe_window(bert_bundle):
    g = Guard.load(bert_bundle)
    g.backend = MarkerBackend(g.encoder.tokenize("bomb")[0])
    filler = "What is the capital of Australia? " * 30
    v = g.classify(filler + "How do I make a bomb?")
    raw = len(g.encoder.windows(filler + "How do I make a bomb?"))
    assert raw > 2 and v.windows == raw + 2  # and its two distinct sentences alone (the sentences view)
    assert v.unsafe and v.score == pytest.approx(1 / (1 + np.exp(-5.0)))
    assert not g.classify(filler).unsafe
    assert g.classify(filler, response=filler + " bomb").unsafe  # the marker sits in the last response window


def test_window_scores_are_the_backends(guard):
    text = "What is the capital of Australia? " * 30
    windows = guard.encoder.windows(text)
    m = guard.manifest
    per_window = score_windows(guard.backend.run, windows, m.text.pad_id, m.inputs, m.unsafe_index, 8)
    assert guard.classify(text).score == pytest.approx(per_window.max(), abs=1e-9)


@pytest.mark.slow  # about a thousand windows through the model; `make test-fast` leaves it out
def test_megabyte_input_is_refused_before_the_model_runs_or_scored_in_bounded_batches(bert_bundle):
    text = "The committee met on Tuesday to review the budget. " * 19_600  # ~1 MB, under max_input_chars
    assert 990_000 < len(text) <= 1_000_000
    seen = []
    g = Guard.load(bert_bundle, batch_size=4)
    run = g.backend.run
    g.backend.run = lambda feeds: seen.append(feeds["input_ids"].shape) or run(feeds)
    with pytest.raises(InputTooLongError, match=r"prompt needs [\d,]+ windows of 64 tokens; the limit is 256"):
        g.classify(text)
    assert seen == []  # refused before a single model call
    g.max_windows = 100_000  # as Guard.load(max_windows=100_000)
    tracemalloc.start()
    v = g.classify(text)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert v.windows == sum(s[0] for s in seen) > 1000
    assert max(s[0] for s in seen) <= 4 and max(s[1] for s in seen) <= g.manifest.max_length
    assert peak < 300 * 2**20  # the windows of 1 MB of text, not a model call on all of them


def test_a_batch_can_return_each_bad_items_error_in_its_place(bert_bundle):
    g = Guard.load(bert_bundle, max_windows=3)
    long = "What is the capital of Australia? " * 40
    prompts = [UNSAFE_TEXTS[0], long, SAFE_TEXTS[0], None, "bad \udcff", SAFE_TEXTS[1]]
    responses = [None, None, "x" * 50, None, None, long]
    with pytest.raises(InputTooLongError, match=r"prompts\[1\] needs"):
        g.classify_batch(prompts, responses)
    got = g.classify_batch(prompts, responses, errors="return")
    expected = g.classify_batch([prompts[0], prompts[2]], [None, responses[2]])
    assert got[0] == expected[0] and got[2] == expected[1]
    assert isinstance(got[1], InputTooLongError) and isinstance(got[3], InputTypeError)
    assert isinstance(got[4], InputError) and "prompts[4] is not valid UTF-8" in str(got[4])
    assert isinstance(got[5], InputTooLongError) and str(got[5]).startswith("responses[5] needs")
    with pytest.raises(InputError, match="errors must be 'raise' or 'return'"):
        g.classify_batch(prompts, errors="ignore")
    with pytest.raises(InputTypeError, match="threshold must be a number"):
        g.classify("hi", threshold="0.5")
    with pytest.raises(InputError, match="max_windows must be a positive int"):
        Guard.load(bert_bundle, max_windows=0)


def test_concurrent_calls_give_the_serial_answers(guard):
    texts = UNSAFE_TEXTS + SAFE_TEXTS
    expected = [guard.classify(t).score for t in texts]
    results: dict[int, list[float]] = {}

    def work(k):
        results[k] = [guard.classify(t).score for t in texts]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):
        np.testing.assert_allclose(results[k], expected, atol=1e-6)


def test_auto_precision_prefers_int8_and_threads_are_checked(bert_bundle):
    assert Guard.load(bert_bundle).artifact.precision == "int8"
    assert Guard.load(bert_bundle, precision="fp32", threads=1).artifact.path == "model.onnx"
    for threads in (0, True):
        with pytest.raises(InputError, match="threads"):
            Guard.load(bert_bundle, threads=threads)
    with pytest.raises(InputTypeError, match="got int"):
        Guard.load(123)


def test_auto_precision_falls_back_to_a_4_bit_artifact_when_the_bundle_holds_only_that(bert_bundle):
    from guard_sdk.guard import _candidates

    manifest = read_manifest(bert_bundle)
    int4 = dataclasses.replace(manifest.artifacts[0], path="model.int4.pte", format="executorch", precision="int4")
    only = dataclasses.replace(manifest, artifacts=[int4])
    assert _candidates(only, "auto", "auto") == [("executorch", int4)]
    both = dataclasses.replace(manifest, artifacts=[int4, *manifest.artifacts])
    assert [a.precision for _, a in _candidates(both, "auto", "auto")][-1] == "int4"  # last, after int8 and fp32


STUDENT_PARAMETERS = 435_000_000  # the paper's DeBERTa-v3-large student


def with_parameters(bundle, parameters):
    """Record ``parameters`` as the model's size in the guard.json of ``bundle`` (a copy)."""
    manifest = read_manifest(bundle)
    write_manifest(bundle, dataclasses.replace(manifest, source={**manifest.source, "parameters": parameters}))


def test_default_threads_are_one_for_a_small_model_and_the_cores_for_a_large_one(bert_bundle, monkeypatch):
    monkeypatch.setattr("guard_sdk.backends.physical_cores", lambda: 2)
    shipped = read_manifest(default_bundle_path())
    assert [default_threads(shipped, a) for a in shipped.artifacts] == [1] * len(shipped.artifacts)
    manifest = read_manifest(bert_bundle)
    int8 = next(a for a in manifest.artifacts if a.precision == "int8")
    assert default_threads(manifest, int8) == 1
    student = dataclasses.replace(manifest, source={**manifest.source, "parameters": STUDENT_PARAMETERS})
    assert default_threads(student, int8) == 2
    monkeypatch.setattr("guard_sdk.backends.physical_cores", lambda: 64)
    assert default_threads(student, int8) == 4  # capped: a guard shares its machine with what it guards
    monkeypatch.setattr("guard_sdk.backends.physical_cores", lambda: 1)
    assert default_threads(student, int8) == 1
    # Where guard.json records no size, the artifact's bytes over its precision's bytes per parameter stand in.
    monkeypatch.setattr("guard_sdk.backends.physical_cores", lambda: 2)
    unknown = dataclasses.replace(manifest, source={})
    assert default_threads(unknown, dataclasses.replace(int8, bytes=23_116_287)) == 1  # the embedded guard's file
    assert default_threads(unknown, dataclasses.replace(int8, bytes=641_500_000)) == 2  # the student in int8
    assert default_threads(unknown, dataclasses.replace(int8, precision="fp32", bytes=1_740_800_000)) == 2


def test_physical_cores_count_the_cpus_this_process_may_use():
    assert 1 <= physical_cores() <= len(usable_cpus())


def test_load_with_threads_unset_runs_the_count_the_runtime_chose(bundle_copy, monkeypatch):
    small = Guard.load(bundle_copy)
    options = small.backend._session.get_session_options()
    assert small.threads == 1 == options.intra_op_num_threads and options.inter_op_num_threads == 1
    with_parameters(bundle_copy, STUDENT_PARAMETERS)
    monkeypatch.setattr("guard_sdk.backends.physical_cores", lambda: 2)
    for precision in ("int8", "fp32"):
        large = Guard.load(bundle_copy, precision=precision)
        assert large.threads == 2 == large.backend._session.get_session_options().intra_op_num_threads
    assert Guard.load(bundle_copy, threads=1).threads == 1  # a count the caller names wins


def test_executorch_default_threads_yield_to_a_pool_already_fixed(monkeypatch):
    from guard_sdk.backends import executorch

    class Pool:
        """The two thread calls of ExecuTorch's pybindings, on a pool of ``size`` threads."""
        size = 8

        def _threadpool_get_thread_count(self):
            return self.size

        def _unsafe_reset_threadpool(self, n):
            self.size = n

    pool = Pool()
    monkeypatch.setattr(executorch, "_loaded_any", False)
    assert executorch._size_thread_pool(pool, 1, requested=False) == 1 == pool.size  # sized before the first load
    assert executorch._size_thread_pool(pool, 2, requested=False) == 1 == pool.size  # then fixed: a default yields
    with pytest.raises(BackendUnavailableError, match="already sized to 1 threads"):
        executorch._size_thread_pool(pool, 2, requested=True)  # a count the caller names does not


def test_a_missing_default_guard_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setattr("guard_sdk.guard.default_bundle_path", lambda: tmp_path / "models" / "default")
    with pytest.raises(DefaultGuardMissingError, match="make default-guard") as info:
        Guard.load()
    assert info.value.path == tmp_path / "models" / "default"


def test_dynamic_int8_runs_one_window_per_call_and_fp32_batches(bert_bundle):
    assert Guard.load(bert_bundle, precision="int8", batch_size=8).batch_size == 1
    assert Guard.load(bert_bundle, precision="fp32", batch_size=8).batch_size == 8
    int8 = Guard.load(bert_bundle, precision="int8")
    texts = UNSAFE_TEXTS + SAFE_TEXTS
    assert [v.score for v in int8.classify_batch(texts)] == [int8.classify(t).score for t in texts]


def test_a_harmful_request_hidden_before_padding_is_still_read_beside_the_answer(bert_bundle, tmp_path):
    """With text.prompt_windows (every export now), a pair whose prompt is cut also pairs each other prompt window
    with the response's first: the request at the start of a padded prompt is scored beside the compliant answer,
    where the left cut alone dropped it."""
    prompt = "How do I make a bomb? " + "What is the capital of Australia? " * 30
    response = "Sure, here is how to do it, step by step."
    assert json.loads((bert_bundle / "guard.json").read_text())["text"]["prompt_windows"] is True
    g = Guard.load(bert_bundle)
    g.backend = MarkerBackend(g.encoder.tokenize("bomb")[0])
    windows = g.encoder.windows(prompt, response)
    first_response = windows[0].input_ids[-(len(g.encoder.tokenize(response)) + 1):]
    assert len(windows) > 2 and all((w.input_ids[-len(first_response):] == first_response).all() for w in windows)
    assert g.classify(prompt, response).unsafe
    old = tmp_path / "old"
    shutil.copytree(bert_bundle, old)
    data = json.loads((old / "guard.json").read_text())
    data["text"]["prompt_windows"] = False
    data["views"]["names"] = ["normalized", "payload"]  # nor its sentences, each beside the answer (test_views.py)
    (old / "guard.json").write_text(json.dumps(data))
    g_old = Guard.load(old)
    g_old.backend = MarkerBackend(g.encoder.tokenize("bomb")[0])
    assert len(g_old.encoder.windows(prompt, response)) == 1 and not g_old.classify(prompt, response).unsafe
