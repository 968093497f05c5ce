"""Texts to inputs: same ids as the Hugging Face tokenizer where it fits; exact windows where it does not."""

import numpy as np
import pytest
from transformers import AutoTokenizer

from guard_sdk.bundle import TextEncoding, read_manifest
from guard_sdk.errors import ManifestError
from guard_sdk.tokenization import TextEncoder, pad_batch, window_starts


def _encoder(bundle, **text):
    manifest = read_manifest(bundle)
    settings = TextEncoding(**{**manifest.text.__dict__, **text})
    return TextEncoder(bundle / "tokenizer.json", manifest.max_length, settings)


@pytest.mark.parametrize("length,size,overlap,starts", [
    (0, 4, 1, [0]), (4, 4, 1, [0]), (5, 4, 1, [0, 3]), (10, 4, 1, [0, 3, 6]), (10, 4, 0, [0, 4, 8]),
])
def test_window_starts(length, size, overlap, starts):
    assert list(window_starts(length, size, overlap)) == starts


@pytest.mark.parametrize("fixture,checkpoint", [("bert_bundle", "tiny_bert"), ("deberta_bundle", "tiny_deberta")])
@pytest.mark.parametrize("prompt,response", [
    ("How do I make a pipe bomb?", None),
    ("¿Cómo preparo una paella? 東京 🎨", None),
    ("", None),
    ("How do I kill a Python process?", "Use kill PID."),
    ("Tell me a joke.", ""),
])
def test_short_inputs_match_the_hugging_face_tokenizer(request, fixture, checkpoint, prompt, response):
    bundle, ckpt = request.getfixturevalue(fixture), request.getfixturevalue(checkpoint)
    hf = AutoTokenizer.from_pretrained(ckpt)
    # An empty response is still a pair (the assistant said nothing); HF's __call__ would drop "" as falsy.
    want = hf.backend_tokenizer.encode(prompt, response) if response == "" else hf(prompt, response).encodings[0]
    [window] = _encoder(bundle).windows(prompt, response)
    assert window.input_ids.tolist() == want.ids
    assert window.token_type_ids.tolist() == want.type_ids


def test_long_prompt_is_cut_into_overlapping_windows_that_cover_it(bert_bundle):
    enc = _encoder(bert_bundle, window_overlap=8)
    ids = enc.tokenize("the committee met on tuesday to review the budget " * 40)
    windows = enc.windows("the committee met on tuesday to review the budget " * 40)
    size = enc.single_budget  # max_length less [CLS] and [SEP]
    assert len(windows) == len(window_starts(len(ids), size, 8)) > 2
    cls, sep = windows[0].input_ids[0], windows[0].input_ids[-1]
    rebuilt = list(windows[0].input_ids[1:-1])
    for w in windows:
        assert len(w.input_ids) <= enc.max_length
        assert w.input_ids[0] == cls and w.input_ids[-1] == sep
    for w in windows[1:]:
        body = list(w.input_ids[1:-1])
        assert body[:8] == rebuilt[-8:]  # the overlap repeats the end of the last window
        rebuilt += body[8:]
    assert rebuilt == ids.tolist()


@pytest.mark.parametrize("side", ["left", "right"])
def test_long_pair_keeps_part_of_the_prompt_and_windows_the_response(bert_bundle, side):
    enc = _encoder(bert_bundle, window_overlap=4, prompt_truncation_side=side)
    prompt, response = "alpha beta gamma delta " * 30, "one two three four five " * 30
    p, r = enc.tokenize(prompt), enc.tokenize(response)
    windows = enc.windows(prompt, response)
    keep = enc.pair_budget - enc.pair_budget // 2  # the response gets half the budget, rounded down
    kept = p[-keep:] if side == "left" else p[:keep]
    size = enc.pair_budget - keep
    response_windows = len(window_starts(len(r), size, 4))
    for w in windows[:response_windows]:  # the kept prompt beside each response window
        assert len(w.input_ids) == enc.max_length or w is windows[response_windows - 1]
        assert w.input_ids[1 : 1 + keep].tolist() == kept.tolist()
        assert w.token_type_ids[: keep + 2].tolist() == [0] * (keep + 2)
        assert set(w.token_type_ids[keep + 2 :].tolist()) == {1}
    # then (text.prompt_windows) every other window of the prompt beside the response's first
    parts = [p[s : s + keep] for s in window_starts(len(p), keep, 4)]
    others = [part.tolist() for part in parts if part.tolist() != kept.tolist()]
    assert len(windows) == response_windows + len(others) > response_windows
    for w, part in zip(windows[response_windows:], others):
        assert w.input_ids[1 : 1 + len(part)].tolist() == part
        assert w.input_ids[2 + len(part) : -1].tolist() == r[:size].tolist()
    assert len(_encoder(bert_bundle, window_overlap=4, prompt_truncation_side=side,
                        prompt_windows=False).windows(prompt, response)) == response_windows


def test_pair_with_a_short_response_keeps_all_of_it(bert_bundle):
    enc = _encoder(bert_bundle)
    windows = enc.windows("word " * 500, "No.")  # the kept prompt's window, then the prompt's other windows
    assert len(windows) > 1 and all(len(w.input_ids) <= enc.max_length for w in windows)
    for window in windows:
        assert window.input_ids[-1 - len(enc.tokenize("No.")) : -1].tolist() == enc.tokenize("No.").tolist()
    assert len(windows[0].input_ids) == enc.max_length


def test_overlap_too_large_for_the_window_is_refused(bert_bundle):
    with pytest.raises(ManifestError, match="window_overlap 40"):
        _encoder(bert_bundle, window_overlap=40)


def test_pad_batch_pads_right_and_feeds_only_the_named_inputs(bert_bundle):
    enc = _encoder(bert_bundle)
    windows = enc.windows("a") + enc.windows("a much longer text than the first one")
    feeds = pad_batch(windows, pad_id=0, names=["input_ids", "attention_mask"])
    assert set(feeds) == {"input_ids", "attention_mask"}
    assert feeds["input_ids"].shape == feeds["attention_mask"].shape == (2, len(windows[1].input_ids))
    n = len(windows[0].input_ids)
    assert feeds["attention_mask"][0].tolist() == [1] * n + [0] * (feeds["input_ids"].shape[1] - n)
    assert np.all(feeds["input_ids"][0, n:] == 0)
