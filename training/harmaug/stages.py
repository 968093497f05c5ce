"""HarmAug's three stages over any generator and teacher: instructions, two responses to each, and the
teacher's P(unsafe) for every row, each written to resumable shards as it goes."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from guard_sdk.training.harmaug.filters import InstructionFilter, distinct_ngrams, parse_instruction
from guard_sdk.training.harmaug.generators import Sampling
from guard_sdk.training.harmaug.requests import (
    draw_exemplars,
    fill_template,
    instruction_messages,
    prefilled_text,
    response_requests,
)


def generate_instructions(generator: Any, tokenizer: Any, seed_harmful: Sequence[str], out_dir: str,
                          count: int, k: int, template: str, prefix: str, sampling: Sampling,
                          keep: InstructionFilter, seed: int, batch_size: int, shard_rows: int,
                          progress: bool = True, fill: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """Ask for ``count`` instructions, each request keyed by its number, and write every outcome (kept or
    dropped, with the reason) to resumable shards; return the run's summary.

    Request i draws its exemplars, then its template's ``fill`` values, from ``random.Random(f"{seed}:{i}")``,
    so a resumed run asks exactly what the killed one would have; the filter first remembers the seed data and
    the rows kept before.
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
            rngs = [random.Random(f"{seed}:{key}") for key in keys]
            exemplars = [draw_exemplars(seed_harmful, k, rng) for rng in rngs]
            texts = [prefilled_text(tokenizer, instruction_messages(ex, fill_template(template, fill or {}, rng)),
                                    prefix) for ex, rng in zip(exemplars, rngs)]
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


CONTENT_KEY = "content_key"  # the column of ``label``'s shards that a score is found by


def content_key(prompt: str, response: str | None) -> str:
    """The key of a scored text: a score belongs to the text it was computed on, not to where the row stood.
    JSON quoting keeps prompt and response apart whatever they hold, and a missing response (null) apart from
    an empty one."""
    return hashlib.sha256(json.dumps([prompt, response]).encode("utf-8")).hexdigest()


def label(teacher: Any, rows: Sequence[dict[str, Any]], out_dir: str, batch_size: int, shard_rows: int,
          progress: bool = True) -> dict[str, Any]:
    """Score every row (``id``, ``prompt``, ``response`` or None) with ``teacher`` into resumable shards:
    the soft score, the categories of a row it judges unsafe (comma-separated taxonomy names: the teacher's, else
    the row's own ``category``, the harm its request asked for; null where neither names one) and the teacher's
    name, under the text's ``content_key``, so a text already on disk (or repeated in ``rows``) is scored once,
    wherever it stands; ``id`` is kept as the first such row's own.
    The summary gives the label balance at 0.5 and the unsafe rows per category."""
    import pyarrow as pa
    from tqdm import tqdm

    from guard_sdk.training.shards import ShardWriter, read_shards

    schema = pa.schema({CONTENT_KEY: pa.string(), "id": pa.string(), "prompt": pa.string(),
                        "response": pa.string(), "teacher_score": pa.float64(), "categories": pa.string(),
                        "teacher": pa.string()})
    named = getattr(teacher, "categories", None)  # a teacher of P(unsafe) alone has none to give
    distinct: dict[str, dict[str, Any]] = {}
    for row in rows:
        distinct.setdefault(content_key(row["prompt"], row.get("response")), row)
    with ShardWriter(out_dir, shard_rows, key=CONTENT_KEY, schema=schema) as out:
        todo = [(key, row) for key, row in distinct.items() if key not in out.done]
        bar = tqdm(total=len(distinct), initial=len(distinct) - len(todo), desc="labels", unit="row",
                   disable=not progress)
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            scores = teacher.score([r["prompt"] for _, r in batch], [r.get("response") for _, r in batch])
            harms = _categories(named, [r for (_, r), s in zip(batch, scores) if s > 0.5])
            for (key, row), score in zip(batch, scores):
                named_here = (harms.get(key) or row.get("category")) if score > 0.5 else None
                out.add({CONTENT_KEY: key, "id": row["id"], "prompt": row["prompt"], "response": row.get("response"),
                         "teacher_score": float(score), "categories": named_here, "teacher": teacher.name})
            bar.update(len(batch))
        bar.close()
    labelled = read_shards(out_dir)
    unsafe = sum(1 for s in labelled["teacher_score"] if s > 0.5)
    per_category = Counter(name for names in labelled["categories"] if names for name in names.split(","))
    return {"rows": len(labelled), "asked_this_run": len(todo), "unsafe": unsafe, "safe": len(labelled) - unsafe,
            "mean_score": float(np.mean(labelled["teacher_score"])) if len(labelled) else 0.0,
            "unsafe_per_category": dict(per_category.most_common())}


def _categories(named: Any, rows: list[dict[str, Any]]) -> dict[str, str | None]:
    """Each row's categories from the teacher's ``categories`` (None where it names none), by content key."""
    found = named([r["prompt"] for r in rows], [r.get("response") for r in rows]) if named and rows else None
    if found is None:
        return {}
    return {content_key(r["prompt"], r.get("response")): ",".join(c) or None for r, c in zip(rows, found)}
