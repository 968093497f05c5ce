"""HarmAug's augmentation, the parts that do not depend on where the model runs.

A request puts k harmful exemplars into an instruction ("Make a single harmful instruction prompt ..."); the
assistant turn is prefilled with an affirmative prefix ("I have an idea for a prompt:"), so a safety-tuned
model continues the prefix instead of refusing. The instruction is parsed out of the continuation, cleaned,
length-filtered and deduplicated, exactly and by near-duplicate (word n-gram Jaccard), against the seed data
too. Generation backends (local transformers, OpenAI-compatible servers) only turn texts into continuations.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from guard_sdk.training.causal_lm import encode_batch, left_padded, load_causal_lm
from guard_sdk.training.data import normalize

# What a continuation often wraps its instruction in: a list number, a "Prompt:" label, markdown emphasis, quotes.
_LABEL = re.compile(r"^\s*(?:\d+[.)]\s+)?(?:\*\*)?(?:(?:prompt|instruction|request|here it is|here's one)\s*[:\-]\s*)?"
                    r"(?:\*\*)?\s*", re.IGNORECASE)
_QUOTES = "\"'“”‘’`"
# An instruction in quotes with the model's comment after it: the quoted part (a closing quote ends a word).
_QUOTED = re.compile(r"^[\"“‘'`](.+?)[\"”’'`](?=\s|$)")


def instruction_messages(exemplars: Sequence[str], template: str) -> list[dict[str, str]]:
    """The user turn of one generation request: ``template`` followed by the exemplars, numbered."""
    listed = "\n".join(f"{i}. {text}" for i, text in enumerate(exemplars, start=1))
    return [{"role": "user", "content": f"{template}\n\nExamples:\n{listed}"}]


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


def parse_instruction(continuation: str) -> str | None:
    """The instruction in a continuation of the prefix, or None when there is none.

    Takes the first non-empty line, drops a list number, a "Prompt:"-style label and the emphasis around
    it; an instruction in quotes is the quoted part, without what the model says after it.
    """
    for line in continuation.strip().splitlines():
        text = _LABEL.sub("", line.strip()).strip().strip("*").strip()
        quoted = _QUOTED.match(text)
        text = (quoted.group(1) if quoted else text).strip(_QUOTES).strip()
        if text:
            return " ".join(text.split())
    return None


def shingles(text: str, n: int = 3) -> frozenset[str]:
    """Word n-grams of the normalised text (the text itself when shorter than n words)."""
    words = normalize(text).split()
    if len(words) < n:
        return frozenset([" ".join(words)]) if words else frozenset()
    return frozenset(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@dataclass
class InstructionFilter:
    """Keeps an instruction only if it is within the word limits, does not echo the request, is new, and is
    not a near-duplicate.

    ``drops`` counts what each rule removed, for the run's summary. An echo shares a run of four words with
    ``request`` (a small model often restates "Make a single harmful instruction prompt ..." instead of
    writing one). Near-duplicates are found by Jaccard similarity of word trigrams through an inverted index,
    so each check touches only texts sharing a trigram.
    """

    min_words: int
    max_words: int
    near_duplicate: float  # Jaccard at or above which two texts are one
    request: str = ""  # the generation request's template; "" checks no echo
    drops: dict[str, int] = field(default_factory=lambda: {"unparsed": 0, "length": 0, "echo": 0, "duplicate": 0,
                                                           "near_duplicate": 0})
    _exact: set[str] = field(default_factory=set)
    _sets: list[frozenset[str]] = field(default_factory=list)
    _index: dict[str, list[int]] = field(default_factory=dict)

    def remember(self, texts: Iterable[str]) -> None:
        """Texts already seen (the seed data, rows of an earlier run) that new ones must not repeat."""
        for text in texts:
            self._add(text)

    def _add(self, text: str) -> None:
        self._exact.add(normalize(text))
        grams = shingles(text)
        for gram in grams:
            self._index.setdefault(gram, []).append(len(self._sets))
        self._sets.append(grams)

    def accept(self, instruction: str | None) -> bool:
        return not self.check(instruction)

    def check(self, instruction: str | None) -> str:
        """"" if ``instruction`` is kept (and remembered), else the rule that dropped it (and counted)."""
        reason = self._reason(instruction)
        if reason:
            self.drops[reason] += 1
        else:
            self._add(instruction)
        return reason

    def _reason(self, instruction: str | None) -> str:
        if instruction is None:
            return "unparsed"
        if not self.min_words <= len(instruction.split()) <= self.max_words:
            return "length"
        if self.request and shingles(instruction, 4) & shingles(self.request, 4):
            return "echo"
        if normalize(instruction) in self._exact:
            return "duplicate"
        grams = shingles(instruction)
        candidates = {i for gram in grams for i in self._index.get(gram, ())}
        if any(jaccard(grams, self._sets[i]) >= self.near_duplicate for i in candidates):
            return "near_duplicate"
        return ""


def draw_exemplars(pool: Sequence[str], k: int, rng: random.Random) -> list[str]:
    """k distinct harmful seed prompts for one request."""
    return rng.sample(list(pool), k)


@dataclass(frozen=True)
class Sampling:
    """How continuations are drawn; every field comes from the recipe."""

    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int


class TransformersGenerator:
    """Continuations from a local causal LM (any transformers checkpoint, GGUF files included), batched."""

    def __init__(self, model: Any, tokenizer: Any, name: str, batch_size: int = 8) -> None:
        self.model, self.tokenizer, self.name, self.batch_size = model.eval(), tokenizer, name, batch_size

    @classmethod
    def from_pretrained(cls, source: str, batch_size: int = 8, **kwargs: Any) -> TransformersGenerator:
        """A folder or hub id; ``kwargs`` as ``causal_lm.load_causal_lm`` takes them (``gguf_file=``)."""
        return cls(*load_causal_lm(source, **kwargs), source, batch_size)

    def complete(self, texts: Sequence[str], sampling: Sampling) -> list[str]:
        """The generated continuation of each text (the text itself, prefix included, is not repeated)."""
        import torch

        torch.manual_seed(sampling.seed)
        out: list[str] = []
        with left_padded(self.tokenizer):  # each text ends where its output starts
            for start in range(0, len(texts), self.batch_size):
                chunk = list(texts[start : start + self.batch_size])
                batch = encode_batch(self.tokenizer, chunk, self.model.device)
                with torch.inference_mode():
                    generated = self.model.generate(
                        **batch, max_new_tokens=sampling.max_new_tokens, do_sample=sampling.temperature > 0,
                        temperature=sampling.temperature or None, top_p=sampling.top_p,
                        pad_token_id=self.tokenizer.pad_token_id)
                out += self.tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1]:],
                                                   skip_special_tokens=True)
        return out


def distinct_ngrams(texts: Sequence[str], n: int = 2) -> float:
    """Distinct-n: unique word n-grams over all word n-grams of ``texts`` (1.0: no n-gram repeats)."""
    grams = [tuple(words[i : i + n]) for t in texts for words in [normalize(t).split()]
             for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def generate_instructions(generator: Any, tokenizer: Any, seed_harmful: Sequence[str], out_dir: str,
                          count: int, k: int, template: str, prefix: str, sampling: Sampling,
                          keep: InstructionFilter, seed: int, batch_size: int, shard_rows: int,
                          progress: bool = True) -> dict[str, Any]:
    """Ask for ``count`` instructions, each request keyed by its number, and write every outcome (kept or
    dropped, with the reason) to resumable shards; return the run's summary.

    Request i draws its exemplars from ``random.Random(f"{seed}:{i}")``, so a resumed run asks exactly what
    the killed one would have; the filter first remembers the seed data and the rows kept before.
    """
    import pyarrow as pa
    from tqdm import tqdm

    from guard_sdk.training.shards import ShardWriter, read_shards

    schema = pa.schema({"id": pa.int64(), "instruction": pa.string(), "kept": pa.bool_(), "dropped": pa.string(),
                        "continuation": pa.string(), "exemplars": pa.list_(pa.string()), "generator": pa.string()})
    keep.remember(seed_harmful)
    with ShardWriter(out_dir, shard_rows, schema=schema) as out:
        if out.done:
            keep.remember(r["instruction"] for r in read_shards(out_dir) if r["kept"])
        todo = out.todo(range(count))
        bar = tqdm(total=count, initial=count - len(todo), desc="instructions", unit="req", disable=not progress)
        for start in range(0, len(todo), batch_size):
            keys = todo[start : start + batch_size]
            exemplars = [draw_exemplars(seed_harmful, k, random.Random(f"{seed}:{key}")) for key in keys]
            texts = [prefilled_text(tokenizer, instruction_messages(ex, template), prefix) for ex in exemplars]
            batch_sampling = Sampling(sampling.max_new_tokens, sampling.temperature, sampling.top_p,
                                      seed=hash((sampling.seed, keys[0])) % 2**31)
            for key, ex, continuation in zip(keys, exemplars, generator.complete(texts, batch_sampling)):
                instruction = parse_instruction(continuation)
                reason = keep.check(instruction)
                out.add({"id": key, "instruction": instruction, "kept": not reason, "dropped": reason,
                         "continuation": continuation, "exemplars": ex, "generator": generator.name})
            bar.update(len(keys))
        bar.close()
    rows = read_shards(out_dir)
    kept_texts = [r["instruction"] for r in rows if r["kept"]]
    dropped = {reason: sum(1 for r in rows if r["dropped"] == reason) for reason in keep.drops}
    return {"asked": len(rows), "asked_this_run": len(todo), "kept": len(kept_texts),
            "parsed": len(rows) - dropped["unparsed"], "dropped": dropped, "distinct_2": distinct_ngrams(kept_texts)}


def generate_responses(generator: Any, tokenizer: Any, instructions: Sequence[tuple[int, str]], out_dir: str,
                       compliant_prefix: str, sampling: Sampling, batch_size: int, shard_rows: int,
                       progress: bool = True) -> dict[str, Any]:
    """Answer each (key, instruction) twice, prefilled and plainly (``response_requests``), into resumable
    shards keyed "key:kind"; a compliant response is stored with its prefix, as the teacher will read it."""
    import pyarrow as pa
    from tqdm import tqdm

    from guard_sdk.training.shards import ShardWriter, read_shards

    schema = pa.schema({"id": pa.string(), "prompt": pa.string(), "kind": pa.string(), "response": pa.string(),
                        "generator": pa.string()})
    requests = [(f"{key}:{kind}", instruction, kind, text) for key, instruction in instructions
                for kind, text in response_requests(tokenizer, instruction, compliant_prefix)]
    with ShardWriter(out_dir, shard_rows, schema=schema) as out:
        todo = [r for r in requests if r[0] not in out.done]
        bar = tqdm(total=len(requests), initial=len(requests) - len(todo), desc="responses", unit="resp",
                   disable=not progress)
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            for (key, instruction, kind, _), continuation in zip(batch, generator.complete([b[3] for b in batch],
                                                                                          sampling)):
                response = (compliant_prefix if kind == "compliant" else "") + continuation
                out.add({"id": key, "prompt": instruction, "kind": kind, "response": response.strip(),
                         "generator": generator.name})
            bar.update(len(batch))
        bar.close()
    rows = read_shards(out_dir)
    return {"instructions": len(instructions), "responses": len(rows), "asked_this_run": len(todo),
            "empty": sum(1 for r in rows if not r["response"])}


def label(teacher: Any, rows: Sequence[dict[str, Any]], out_dir: str, batch_size: int, shard_rows: int,
          progress: bool = True) -> dict[str, Any]:
    """Score every row (``id``, ``prompt``, ``response`` or None) with ``teacher`` into resumable shards:
    the soft score and the teacher's name; the summary gives the label balance at 0.5."""
    import pyarrow as pa
    from tqdm import tqdm

    from guard_sdk.training.shards import ShardWriter, read_shards

    schema = pa.schema({"id": pa.string(), "prompt": pa.string(), "response": pa.string(),
                        "teacher_score": pa.float64(), "teacher": pa.string()})
    with ShardWriter(out_dir, shard_rows, schema=schema) as out:
        todo = [r for r in rows if r["id"] not in out.done]
        bar = tqdm(total=len(rows), initial=len(rows) - len(todo), desc="labels", unit="row", disable=not progress)
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            scores = teacher.score([r["prompt"] for r in batch], [r.get("response") for r in batch])
            for row, score in zip(batch, scores):
                out.add({"id": row["id"], "prompt": row["prompt"], "response": row.get("response"),
                         "teacher_score": float(score), "teacher": teacher.name})
            bar.update(len(batch))
        bar.close()
    labelled = read_shards(out_dir)
    unsafe = sum(1 for s in labelled["teacher_score"] if s > 0.5)
    return {"rows": len(labelled), "asked_this_run": len(todo), "unsafe": unsafe, "safe": len(labelled) - unsafe,
            "mean_score": float(np.mean(labelled["teacher_score"])) if len(labelled) else 0.0}
