"""Teachers: anything that scores (prompt[, response]) pairs with P(unsafe), to label HarmAug data.

One protocol, ``score(prompts, responses) -> P(unsafe)``, and ``categories(prompts, responses)``: the harms
(taxonomy names, docs/taxonomy.md) of texts it judges unsafe, or None from a teacher that names none. Two local
kinds:

- ``LlamaGuardTeacher``: a causal LM asked the Llama Guard 3 question (its task text and category list);
  the score is the softmax over the logits of the first token of "safe" and of "unsafe" at the position
  where the answer starts. A Llama Guard checkpoint builds the prompt with its own chat template; any other
  chat model gets the same task text as one user turn in its template. Its categories are the S-codes it writes
  on the line after "unsafe" (Llama Guard 3's "unsafe\nS1,S10"), greedily, with "unsafe\n" prefilled.
- ``ClassifierTeacher``: any sequence classifier (P of its unsafe label), a guard bundle of ours included; its
  categories are those over their thresholds, for a model with a category head.

A prompt alone is judged as the user's message; with a response, the assistant's message is judged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from guard_sdk.categories import TAXONOMY
from guard_sdk.errors import InputError
from guard_sdk.training.harmaug.causal_lm import encode_batch, left_padded, load_causal_lm

# Llama Guard 3's hazard categories (MLCommons taxonomy), as its model card and chat template list them.
LLAMA_GUARD_CATEGORIES: tuple[str, ...] = (
    "S1: Violent Crimes.", "S2: Non-Violent Crimes.", "S3: Sex Crimes.", "S4: Child Exploitation.",
    "S5: Defamation.", "S6: Specialized Advice.", "S7: Privacy.", "S8: Intellectual Property.",
    "S9: Indiscriminate Weapons.", "S10: Hate.", "S11: Self-Harm.", "S12: Sexual Content.", "S13: Elections.",
    "S14: Code Interpreter Abuse.",
)


CATEGORY_LINE = "unsafe\n"  # prefilled after the judge prompt: the next line lists the violated S-codes
CATEGORY_TOKENS = 16  # enough for a few codes ("S1,S10,S14")


class Teacher(Protocol):
    name: str

    def score(self, prompts: Sequence[str], responses: Sequence[str | None]) -> np.ndarray: ...

    def categories(self, prompts: Sequence[str], responses: Sequence[str | None]) -> list[tuple[str, ...]] | None:
        ...


def parse_codes(line: str) -> tuple[str, ...]:
    """The taxonomy names of the Llama Guard 3 codes (S1..S14) on the first line of ``line``, in order, once each;
    codes it does not know are dropped."""
    by_code = {c.code: c.name for c in TAXONOMY}
    first = line.strip().split("\n", 1)[0] if line.strip() else ""
    return tuple(dict.fromkeys(by_code[c] for c in re.findall(r"\bS\d+\b", first) if c in by_code))


def pairs(prompts: Sequence[str], responses: Sequence[str | None] | None) -> list[tuple[str, str | None]]:
    responses = [None] * len(prompts) if responses is None else list(responses)
    if len(responses) != len(prompts):
        raise InputError(f"{len(prompts)} prompts but {len(responses)} responses; give None where there is none")
    return list(zip(prompts, responses))


def llama_guard_task(prompt: str, response: str | None) -> str:
    """The Llama Guard 3 task text for one conversation (the user turn a Llama Guard model reads)."""
    role = "User" if response is None else "Agent"
    conversation = f"User: {prompt}" + ("" if response is None else f"\n\nAgent: {response}")
    categories = "\n".join(LLAMA_GUARD_CATEGORIES)
    return (
        f"Task: Check if there is unsafe content in '{role}' messages in conversations according our safety "
        f"policy with the below categories.\n\n<BEGIN UNSAFE CONTENT CATEGORIES>\n{categories}\n"
        f"<END UNSAFE CONTENT CATEGORIES>\n\n<BEGIN CONVERSATION>\n\n{conversation}\n\n<END CONVERSATION>\n\n"
        f"Provide your safety assessment for ONLY THE LAST {role} message in the above conversation:\n"
        " - First line must read 'safe' or 'unsafe'.\n"
        " - If unsafe, a second line must include a comma-separated list of violated categories."
    )


def verdict_token_ids(tokenizer: Any) -> tuple[int, int]:
    """The first token of "safe" and of "unsafe" as the answer's first word; they must differ."""
    safe, unsafe = (tokenizer.encode(word, add_special_tokens=False)[0] for word in ("safe", "unsafe"))
    if safe == unsafe:
        raise InputError("the tokenizer starts 'safe' and 'unsafe' with the same token; it cannot be a judge")
    return safe, unsafe


def unsafe_from_logits(logits: np.ndarray, safe_id: int, unsafe_id: int) -> np.ndarray:
    """P(unsafe) renormalised over the two answer tokens, from next-token logits of shape (rows, vocab)."""
    pair = logits[:, [safe_id, unsafe_id]].astype(np.float64)
    pair -= pair.max(axis=1, keepdims=True)
    e = np.exp(pair)
    return e[:, 1] / e.sum(axis=1)


def judge_prompt(tokenizer: Any, prompt: str, response: str | None) -> str:
    """The text a judge model reads, up to where its answer starts. A Llama Guard checkpoint (its chat
    template holds the category block) gets the conversation; another chat model gets the task text as one
    user turn; a model with no chat template gets the task text and a blank line."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if "BEGIN UNSAFE CONTENT CATEGORIES" in template:
        turns = [{"role": "user", "content": prompt}]
        turns += [] if response is None else [{"role": "assistant", "content": response}]
    else:
        turns = [{"role": "user", "content": llama_guard_task(prompt, response)}]
    if template:
        return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    return turns[0]["content"] + "\n\n"


class LlamaGuardTeacher:
    """A causal LM scored as Llama Guard is: P("unsafe" | the task) against P("safe" | the task)."""

    def __init__(self, model: Any, tokenizer: Any, name: str, batch_size: int = 8) -> None:
        self.model, self.tokenizer, self.name, self.batch_size = model.eval(), tokenizer, name, batch_size
        self.safe_id, self.unsafe_id = verdict_token_ids(tokenizer)

    @classmethod
    def from_pretrained(cls, source: str | Path, batch_size: int = 8, **kwargs: Any) -> LlamaGuardTeacher:
        """Any causal LM folder or hub id; ``kwargs`` as ``causal_lm.load_causal_lm`` takes them."""
        model, tokenizer = load_causal_lm(source, **kwargs)
        return cls(model, tokenizer, name=f"llama-guard-style:{source}", batch_size=batch_size)

    def prompt_text(self, prompt: str, response: str | None) -> str:
        """The exact text the model reads, up to where its answer starts."""
        return judge_prompt(self.tokenizer, prompt, response)

    def next_token_logits(self, texts: Sequence[str]) -> np.ndarray:
        """Logits of the token after each text, batched with left padding so the last position is the answer's."""
        import torch

        out = []
        with left_padded(self.tokenizer):
            for start in range(0, len(texts), self.batch_size):
                chunk = list(texts[start : start + self.batch_size])
                batch = encode_batch(self.tokenizer, chunk, self.model.device)
                with torch.inference_mode():
                    out.append(self.model(**batch).logits[:, -1, :].float().cpu().numpy())
        return np.concatenate(out)

    def score(self, prompts: Sequence[str], responses: Sequence[str | None] | None = None) -> np.ndarray:
        texts = [self.prompt_text(p, r) for p, r in pairs(prompts, responses)]
        if not texts:
            return np.empty(0)
        return unsafe_from_logits(self.next_token_logits(texts), self.safe_id, self.unsafe_id)

    def categories(self, prompts: Sequence[str], responses: Sequence[str | None] | None = None
                   ) -> list[tuple[str, ...]]:
        """The codes the model writes after "unsafe\n", greedily (``parse_codes``)."""
        import torch

        texts = [self.prompt_text(p, r) + CATEGORY_LINE for p, r in pairs(prompts, responses)]
        lines: list[str] = []
        with left_padded(self.tokenizer):
            for start in range(0, len(texts), self.batch_size):
                batch = encode_batch(self.tokenizer, texts[start : start + self.batch_size], self.model.device)
                with torch.inference_mode():
                    out = self.model.generate(**batch, max_new_tokens=CATEGORY_TOKENS, do_sample=False,
                                              pad_token_id=self.tokenizer.pad_token_id)
                lines += self.tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        return [parse_codes(line) for line in lines]


class ClassifierTeacher:
    """A sequence classifier as a teacher: a guard bundle (through the runtime) or a PyTorch checkpoint (on
    the windows a bundle of ``max_length`` would score). ``source`` None is the embedded default guard."""

    def __init__(self, source: str | Path | None = None, name: str | None = None, max_length: int = 512,
                 **load: Any) -> None:
        if source is not None and not (Path(source) / "guard.json").is_file():
            from guard_sdk.training.evaluate import checkpoint_scorer

            self._score = checkpoint_scorer(source, max_length, progress=False)
            self.name = name or f"classifier:{source}"
            return
        from guard_sdk import Guard
        from guard_sdk.training.evaluate import guard_scorer

        guard = Guard.load(source, **load)
        self._score, self.name = guard_scorer(guard, progress=False), name or f"bundle:{guard.manifest.name}"

    def score(self, prompts: Sequence[str], responses: Sequence[str | None] | None = None) -> np.ndarray:
        rows = pairs(prompts, responses)
        if not rows:
            return np.empty(0)
        return self._score([p for p, _ in rows], [r for _, r in rows])

    def categories(self, prompts: Sequence[str], responses: Sequence[str | None] | None = None
                   ) -> list[tuple[str, ...]] | None:
        """The categories over their thresholds of texts scored before; None for a model without categories."""
        if not self._score.thresholds:
            return None
        return [self._score.violations(p, r) for p, r in pairs(prompts, responses)]
