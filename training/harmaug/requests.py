"""The texts HarmAug sends a generator.

A request puts k harmful exemplars into an instruction ("Make a single harmful instruction prompt ..."); the
assistant turn is prefilled with an affirmative prefix ("I have an idea for a prompt:"), so a safety-tuned
model continues the prefix instead of refusing. A responder answers each instruction twice: prefilled to
comply, and plainly.
"""

from __future__ import annotations

import random
import string
from collections.abc import Mapping, Sequence
from typing import Any


def instruction_messages(exemplars: Sequence[str], template: str) -> list[dict[str, str]]:
    """The user turn of one generation request: ``template`` followed by the exemplars, numbered (if any)."""
    if not exemplars:
        return [{"role": "user", "content": template}]
    listed = "\n".join(f"{i}. {text}" for i, text in enumerate(exemplars, start=1))
    return [{"role": "user", "content": f"{template}\n\nExamples:\n{listed}"}]


def template_fields(template: str) -> set[str]:
    """The ``{name}`` placeholders of a request template."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def fill_template(template: str, fill: Mapping[str, Sequence[str]], rng: random.Random) -> str:
    """``template`` with each ``{name}`` replaced by a value drawn from ``fill[name]``: one request asks for a
    harmless question about one topic with one alarming word, the next for another pair."""
    return template.format_map(drawn_fill(fill, rng)) if fill else template


def drawn_fill(fill: Mapping[str, Sequence[str]], rng: random.Random) -> dict[str, str]:
    """The value of each placeholder for one request, in the order fill_template draws them."""
    return {name: rng.choice(list(fill[name])) for name in sorted(fill)}


def prefilled_text(tokenizer: Any, messages: list[dict[str, str]], prefix: str) -> str:
    """The chat template up to the assistant's turn, then ``prefix``: the model continues our words."""
    opening = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return opening + prefix


def response_requests(tokenizer: Any, instruction: str, compliant_prefix: str) -> list[tuple[str, str]]:
    """The two ways a responder answers one instruction, as (kind, text to continue):

    ``compliant`` prefills the assistant's turn with ``compliant_prefix`` ("Sure, here is"), so the answer
    complies; ``plain`` leaves the turn open, and a safety-tuned responder often refuses. The teacher then
    sees harmful and harmless responses to the same prompt. The prefix is part of the stored response.
    """
    messages = [{"role": "user", "content": instruction}]
    return [("compliant", prefilled_text(tokenizer, messages, compliant_prefix)),
            ("plain", prefilled_text(tokenizer, messages, ""))]


def draw_exemplars(pool: Sequence[str], k: int, rng: random.Random) -> list[str]:
    """k distinct harmful seed prompts for one request."""
    return rng.sample(list(pool), k)
