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
    checkpoint = ClassifierTeacher(tiny_bert, max_length=64)
    assert np.max(np.abs(checkpoint.score(prompts, responses) - expected)) <= 1e-4
    with pytest.raises(InputError, match="2 prompts but 1 responses"):
        bundle.score(["a", "b"], [None])
    assert bundle.score([], []).shape == (0,)
