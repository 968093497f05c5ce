"""Teachers: the Llama Guard prompt, P(unsafe) from the first answer token, and classifier teachers."""

import numpy as np
import pytest
import torch

from guard_sdk import Guard, InputError
from guard_sdk.training.harmaug.teachers import (
    LLAMA_GUARD_CATEGORIES,
    ClassifierTeacher,
    LlamaGuardTeacher,
    llama_guard_task,
    parse_codes,
    unsafe_from_logits,
)

from .conftest import SAFE_TEXTS, UNSAFE_TEXTS


def test_task_text_names_the_judged_role_and_every_category():
    prompt_only = llama_guard_task("How do I make a bomb?", None)
    pair = llama_guard_task("How do I make a bomb?", "I can't help with that.")
    assert "unsafe content in 'User' messages" in prompt_only and "ONLY THE LAST User message" in prompt_only
    assert "User: How do I make a bomb?\n\nAgent: I can't help with that." in pair
    assert "ONLY THE LAST Agent message" in pair
    assert all(c in pair for c in LLAMA_GUARD_CATEGORIES) and "S14: Code Interpreter Abuse." in pair


def test_chat_model_reads_the_task_as_one_user_turn_then_answers(tiny_lm):
    teacher = LlamaGuardTeacher(*tiny_lm, name="tiny")
    text = teacher.prompt_text("How do I make a bomb?", "Sure, here is how")
    assert text == f"<|user|>{llama_guard_task('How do I make a bomb?', 'Sure, here is how')}\n<|assistant|>"


def test_a_llama_guard_checkpoint_builds_its_own_prompt(tiny_lm):
    model, tokenizer = tiny_lm
    template = ("{% for m in messages %}[{{ m.role }}] {{ m.content }} {% endfor %}BEGIN UNSAFE CONTENT CATEGORIES"
                "{% if add_generation_prompt %} ANSWER:{% endif %}")
    saved, tokenizer.chat_template = tokenizer.chat_template, template
    try:
        text = LlamaGuardTeacher(model, tokenizer, name="lg").prompt_text("hi", "hello")
    finally:
        tokenizer.chat_template = saved
    assert text == "[user] hi [assistant] hello BEGIN UNSAFE CONTENT CATEGORIES ANSWER:"


def test_scores_equal_a_direct_softmax_over_the_two_answer_tokens(tiny_lm):
    """Batched with left padding, each score equals the softmax of that text's own last-position logits."""
    model, tokenizer = tiny_lm
    teacher = LlamaGuardTeacher(model, tokenizer, name="tiny", batch_size=4)
    prompts = UNSAFE_TEXTS[:3] + SAFE_TEXTS[:3]
    responses = [None, "Sure, here is how.", None, "No.", None, "The capital is Canberra."]
    scores = teacher.score(prompts, responses)
    safe_id = tokenizer.encode("safe", add_special_tokens=False)[0]
    unsafe_id = tokenizer.encode("unsafe", add_special_tokens=False)[0]
    assert safe_id != unsafe_id
    for score, prompt, response in zip(scores, prompts, responses):
        ids = tokenizer(teacher.prompt_text(prompt, response), return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            last = model(**ids).logits[0, -1]
        direct = torch.softmax(last[[safe_id, unsafe_id]].double(), dim=0)[1].item()
        assert score == pytest.approx(direct, abs=1e-5)
    assert len(set(np.round(scores, 6))) > 1  # the texts are told apart, not one constant


def test_unsafe_from_logits_is_the_two_way_softmax():
    logits = np.array([[0.0, 2.0, 0.0, 9.0], [5.0, -1.0, 3.0, 0.0]])
    expected = 1 / (1 + np.exp(np.array([2.0, -1.0]) - np.array([9.0, 0.0])))
    assert np.allclose(unsafe_from_logits(logits, 1, 3), expected)


def test_classifier_teachers_score_as_the_runtime_does(bert_bundle, tiny_bert):
    guard = Guard.load(bert_bundle, precision="fp32")
    prompts, responses = UNSAFE_TEXTS[:4] + SAFE_TEXTS[:4], [None] * 4 + ["ok"] * 4
    expected = np.array([v.score for v in guard.classify_batch(prompts, responses)])
    bundle = ClassifierTeacher(bert_bundle, precision="fp32")
    assert bundle.name == "bundle:tiny-bert-guard"
    assert np.array_equal(bundle.score(prompts, responses), expected)
    assert bundle.categories(prompts, responses) is None  # a guard without categories names none
    checkpoint = ClassifierTeacher(tiny_bert, max_length=64)
    assert np.max(np.abs(checkpoint.score(prompts, responses) - expected)) <= 1e-4
    with pytest.raises(InputError, match="2 prompts but 1 responses"):
        bundle.score(["a", "b"], [None])
    assert bundle.score([], []).shape == (0,)


def test_llama_guard_codes_read_as_taxonomy_names():
    assert parse_codes("S1,S10") == ("violent_crimes", "hate")
    assert parse_codes(" S9, S99,S9\nS2") == ("indiscriminate_weapons",)  # unknown codes and later lines dropped
    assert parse_codes("") == () and parse_codes("none") == ()


def test_a_llama_guard_teacher_names_the_codes_it_writes_after_unsafe(tiny_lm, monkeypatch):
    import copy

    model, tokenizer = tiny_lm[0], copy.deepcopy(tiny_lm[1])
    tokenizer.add_tokens(["S1", "S10"])  # words of a real judge's vocabulary; the stand-in model never reads them
    teacher = LlamaGuardTeacher(model, tokenizer, name="tiny")
    written = tokenizer("S1 , S10\n", add_special_tokens=False)["input_ids"]
    asked = []

    def generate(input_ids, attention_mask, max_new_tokens, do_sample, pad_token_id):
        asked.extend(input_ids.tolist())
        assert max_new_tokens >= len(written) and not do_sample
        return torch.cat([input_ids, torch.tensor([written] * len(input_ids))], dim=1)

    monkeypatch.setattr(model, "generate", generate)
    assert teacher.categories(UNSAFE_TEXTS[:3], [None] * 3) == [("violent_crimes", "hate")] * 3
    verdict = tokenizer("unsafe", add_special_tokens=False)["input_ids"]
    assert len(asked) == 3 and all(ids[-len(verdict) :] == verdict for ids in asked)  # the verdict is prefilled


def test_a_classifier_teacher_with_categories_names_the_bundles_violations(categories_bundle, categories_checkpoint):
    guard = Guard.load(categories_bundle, precision="fp32")
    prompts, responses = UNSAFE_TEXTS[:6] + SAFE_TEXTS[:6], [None] * 12
    expected = [v.violations for v in guard.classify_batch(prompts, responses)]
    assert len(set(expected)) > 1  # the texts differ in what they violate
    bundle = ClassifierTeacher(categories_bundle, precision="fp32")
    bundle.score(prompts, responses)
    assert bundle.categories(prompts, responses) == expected
    checkpoint = ClassifierTeacher(categories_checkpoint, max_length=64)  # no training record: thresholds 0.5
    checkpoint.score(prompts, responses)
    scores = checkpoint._score.categories
    assert checkpoint.categories(prompts, responses) == [
        tuple(sorted((n for n, p in scores[(t, None)].items() if p >= 0.5), key=lambda n: -scores[(t, None)][n]))
        for t in prompts]
    with pytest.raises(KeyError):  # a text it never scored has no categories to give
        bundle.categories(["never scored"], [None])
