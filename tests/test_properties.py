"""Property-based tests (hypothesis): no guard.json and no input text, however odd, gets anything but a result or
a typed error from the runtime."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard_sdk import Guard, GuardError, InputError, Verdict
from guard_sdk.bundle import Manifest, parse_manifest
from guard_sdk.views import BLANK, MAX_SENTENCES, sentences

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
WHITESPACE = str.maketrans("", "", " \t\r\n")  # what the sentences view may drop where it breaks
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=300)  # lone surrogates included


def _paths(node, prefix=()):
    """Every path to a value inside a JSON document."""
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield from _paths(child, (*prefix, key))


@pytest.fixture(scope="module")
def manifest_data(bert_bundle):
    return json.loads((bert_bundle / "guard.json").read_text())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), value=JSON)
def test_any_edit_of_guard_json_parses_or_is_a_manifest_error(manifest_data, bert_bundle, data, value):
    paths = list(_paths(manifest_data))[1:]
    path = data.draw(st.sampled_from(paths))
    edited = copy.deepcopy(manifest_data)
    node = edited
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    raw = json.dumps(edited, allow_nan=True).encode()
    try:
        parsed = parse_manifest(raw, bert_bundle / "guard.json")
    except GuardError:
        return
    assert isinstance(parsed, Manifest) and 0 < parsed.threshold < 1
    assert isinstance(parsed.max_length, int) and not isinstance(parsed.max_length, bool)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_any_bytes_as_guard_json_are_refused_with_a_manifest_error(raw, tmp_path_factory):
    with pytest.raises(GuardError):
        parse_manifest(raw, tmp_path_factory.getbasetemp() / "guard.json")


@pytest.fixture(scope="module")
def guard(bert_bundle):
    return Guard.load(bert_bundle, max_windows=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=ANY_TEXT, response=st.none() | ANY_TEXT)
def test_any_text_gets_a_verdict_or_an_input_error(guard, prompt, response):
    try:
        verdict = guard.classify(prompt, response)
    except InputError:  # a lone surrogate, or more than max_windows windows
        return
    assert isinstance(verdict, Verdict) and 0.0 <= verdict.score <= 1.0 and 1 <= verdict.windows <= 8
    assert verdict.unsafe == (verdict.score >= verdict.threshold)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(st.one_of(ANY_TEXT, st.none(), st.integers()), max_size=6))
def test_a_batch_returns_for_each_item_its_own_verdict_or_error(guard, items):
    got = guard.classify_batch(items, errors="return")
    assert len(got) == len(items)
    for item, result in zip(items, got):
        if isinstance(result, Verdict):
            assert result == guard.classify(item)
        else:
            assert isinstance(result, InputError)
            with pytest.raises(InputError):
                guard.classify(item)


SENTENCE_WORDS = st.sampled_from(["Our", "Then", "The", "I", "Witcher", "garden", "grows", "beans.", "bread?!", "x:",
                                  "10:30", "\n", "\r\n", "", "a", "It's", "e.g."])


@settings(max_examples=300, deadline=None)
@given(words=st.lists(SENTENCE_WORDS, max_size=40), gaps=st.lists(st.sampled_from([" ", "  ", "\t", " \t"]),
                                                                  min_size=40, max_size=40))
def test_sentences_keep_every_character_but_the_whitespace_they_break_at(words, gaps):
    text = "".join(word + gap for word, gap in zip(words, gaps))
    parts = sentences(text)
    assert parts == [] or len(parts) >= 2
    assert all(not BLANK.fullmatch(part) for part in parts)
    if len(parts) <= MAX_SENTENCES:
        assert "".join(parts).translate(WHITESPACE) == (text.translate(WHITESPACE) if parts else "")
