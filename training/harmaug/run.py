"""A HarmAug run from its recipe, stage by stage: each stage reads the one before from disk and writes its own
folder of resumable shards under the recipe's output_dir, so any stage can be killed and run again.

    instructions/  every generation request: the parsed instruction, kept or the filter that dropped it
    responses/     two answers to each kept instruction, "ID:compliant" (prefilled) and "ID:plain"
    labels/        the teacher's P(unsafe) for each kept instruction alone ("ID") and for each answer
    recipe.json    the recipe the folder was started with; a different one is refused
    summary.json   each stage's figures: rows, drops per filter, label balance, rate, samples
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import time
from pathlib import Path
from typing import Any

from guard_sdk.errors import InputError
from guard_sdk.training.finetune import build_splits
from guard_sdk.training.harmaug.causal_lm import load_causal_lm
from guard_sdk.training.harmaug.filters import InstructionFilter
from guard_sdk.training.harmaug.generators import TransformersGenerator
from guard_sdk.training.harmaug.recipe import AugmentRecipe, InstructionStage
from guard_sdk.training.harmaug.requests import drawn_fill
from guard_sdk.training.harmaug.stages import generate_instructions, generate_responses, label
from guard_sdk.training.recipe import ModelSpec, TeacherSpec, pin_record
from guard_sdk.training.shards import SHARD_GLOB, read_shards, write_json
from guard_sdk.training.trainer import resolve_model

log = logging.getLogger("guard_sdk.augment")


SAMPLES = 10  # rows of each stage quoted in summary.json


def _load_local(spec: ModelSpec) -> tuple[Any, Any]:
    return load_causal_lm(resolve_model(spec.model), **({"gguf_file": spec.gguf_file} if spec.gguf_file else {}))


def _client(spec: ModelSpec) -> Any:
    """A completions client for an openai server, or for llama.cpp's server started here (backend llamacpp)."""
    from guard_sdk.training.harmaug.openai_client import CompletionsClient

    if spec.backend == "llamacpp":
        from guard_sdk.training.harmaug.llamacpp import LlamaCppServer

        assert spec.gguf_file is not None  # recipe.check_model
        server = LlamaCppServer(Path(resolve_model(spec.model)) / spec.gguf_file, parallel=spec.concurrency)
        return CompletionsClient(server.base_url, spec.model, concurrency=spec.concurrency, timeout=spec.timeout_s,
                                 retries=spec.retries, server=server)
    key = None
    if spec.api_key_env:
        key = os.environ.get(spec.api_key_env)
        if not key:
            raise InputError(f"the environment variable {spec.api_key_env} (api_key_env) is not set")
    return CompletionsClient(spec.base_url or "", spec.model, api_key=key, concurrency=spec.concurrency,
                             timeout=spec.timeout_s, retries=spec.retries)


def _served_tokenizer(spec: ModelSpec) -> Any:
    """The served model's tokenizer, whose chat template builds the prompts sent to the server (llamacpp with
    no tokenizer named: the one inside the GGUF file)."""
    from transformers import AutoTokenizer

    if spec.backend == "llamacpp" and spec.tokenizer is None:
        return AutoTokenizer.from_pretrained(resolve_model(spec.model), gguf_file=spec.gguf_file)
    return AutoTokenizer.from_pretrained(resolve_model(spec.tokenizer or spec.model))


def open_generator(spec: ModelSpec) -> tuple[Any, Any]:
    """(generator, the tokenizer whose chat template its requests are written in)."""
    name = spec.model + (f"/{spec.gguf_file}" if spec.gguf_file else "")
    if spec.backend == "local":
        model, tokenizer = _load_local(spec)
        return TransformersGenerator(model, tokenizer, name, spec.batch_size), tokenizer
    from guard_sdk.training.harmaug.openai_client import OpenAIGenerator

    return OpenAIGenerator(_client(spec)), _served_tokenizer(spec)


def open_teacher(spec: TeacherSpec) -> Any:
    from guard_sdk.training.harmaug.teachers import ClassifierTeacher, LlamaGuardTeacher

    if spec.kind == "classifier":
        return ClassifierTeacher(None if spec.classifier == "default" else spec.classifier,
                                 max_length=spec.max_length)
    judge = spec.model
    assert judge is not None  # harmaug.recipe.check: llama_guard has a model
    if judge.backend == "local":
        model, tokenizer = _load_local(judge)
        return LlamaGuardTeacher(model, tokenizer, name=f"llama-guard-style:{judge.model}",
                                 batch_size=spec.batch_size)
    from guard_sdk.training.harmaug.openai_client import OpenAILlamaGuardTeacher

    return OpenAILlamaGuardTeacher(_client(judge), _served_tokenizer(judge), logprobs=spec.logprobs)


def teacher_identity(spec: TeacherSpec) -> str | None:
    """What changes when a classifier teacher is retrained in place: the sha256 of its bundle's guard.json (which
    holds its artifacts' hashes) or of its checkpoint's weights. Cached scores are pinned to it, so scores of an
    earlier model at the same path are refused, never reused. None for a causal-LM judge (named by its model)."""
    if spec.kind != "classifier":
        return None
    from guard_sdk.bundle import sha256_file
    from guard_sdk.guard import default_bundle_path

    folder = default_bundle_path() if spec.classifier == "default" else Path(spec.classifier or "")
    files = [folder / "guard.json"] if (folder / "guard.json").is_file() else sorted(
        [*folder.glob("*.safetensors"), *folder.glob("*.bin")])
    if not files:
        raise InputError(f"{folder}: no guard bundle or checkpoint weights there (teacher.classifier)")
    return ",".join(sha256_file(f) for f in files)


def pin_teacher(folder: Path, spec: TeacherSpec) -> None:
    """Pin a folder of cached teacher scores to the teacher and its identity (``teacher_identity``)."""
    if not (folder / "recipe.json").is_file() and any(folder.glob(SHARD_GLOB)):
        raise InputError(f"{folder}: scores of a teacher this version did not record (it pins teachers by their "
                         "weights now); delete the folder and run the stage again")
    record = {k: v for k, v in dataclasses.asdict(spec).items() if k != "batch_size"}
    pin_record(folder, {"teacher": record, "identity": teacher_identity(spec)}, refuse_foreign=False)


# How a run goes, not what it makes: these may change between a killed run and its rerun.
HOW_IT_RUNS = frozenset({"output_dir", "shard_rows", "count", "backend", "base_url", "api_key_env", "batch_size",
                         "concurrency", "timeout_s", "retries",
                         "categories"})  # instructions.categories: what export writes, not what the stages make


def _what_it_makes(record: Any) -> Any:
    if isinstance(record, dict):
        return {k: _what_it_makes(v) for k, v in record.items() if k not in HOW_IT_RUNS}
    return record


def pin_recipe(recipe: AugmentRecipe) -> Path:
    """``recipe.pin_record`` of what the recipe makes: how the run goes (``HOW_IT_RUNS``: servers, batch
    sizes, timeouts, shard size, instructions.count) and the categories export names may differ between runs of
    one folder."""
    out = Path(recipe.output_dir)
    pin_record(out, _what_it_makes(dataclasses.asdict(recipe)))
    return out


def labels_finished(folder: str | Path) -> bool:
    """Whether ``augment label`` finished on the HarmAug run in ``folder``: it records how many rows it labelled in
    summary.json when it ends, so a run killed before then left no record, or fewer rows than labels/ holds."""
    from guard_sdk.training.shards import read_shards

    summary = Path(folder) / "summary.json"
    if not (Path(folder) / "labels").is_dir() or not summary.is_file():
        return False
    recorded = json.loads(summary.read_text(encoding="utf-8")).get("labels", {}).get("rows")
    return recorded is not None and recorded == len(read_shards(Path(folder) / "labels"))


def _record(out: Path, stage: str, summary: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Add the rate of this run to ``summary`` and store it under ``stage`` in summary.json."""
    done = summary["asked_this_run"]
    summary = {**summary, "seconds": round(seconds, 1),
               "per_minute": round(60 * done / seconds, 2) if done and seconds > 0 else None}
    path = out / "summary.json"
    everything = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    write_json(path, {**everything, stage: summary})
    return summary


def seed_prompts(recipe: AugmentRecipe, data_dir: str | None) -> tuple[list[str], list[str]]:
    """(exemplars: the harmful prompt-only rows of the train split, every other seed and holdout prompt and the
    evasion suite's).

    The split is the one a training recipe with the same data section makes, so no dev or test prompt is
    ever shown to the generator; all prompts, those included, are what new instructions must not repeat.
    """
    splits, holdout = build_splits(recipe.data, data_dir)
    train = splits["train"]
    rows = zip(train["prompt"], train["response"], train["label"])
    exemplars = sorted({prompt for prompt, response, y in rows if y == 1 and response is None})
    if len(exemplars) < recipe.instructions.k:
        raise InputError(f"the seed data's train split has {len(exemplars)} harmful prompts; instructions.k is "
                         f"{recipe.instructions.k}")
    from guard_sdk.training.evasion.suite import every_prompt

    chosen = set(exemplars)
    parts = [*splits.values(), *([holdout] if holdout is not None else [])]
    others = sorted(({p for part in parts for p in part["prompt"]} | set(every_prompt())) - chosen)
    return exemplars, others


def run_instructions(recipe: AugmentRecipe, data_dir: str | None = None, progress: bool = True) -> dict[str, Any]:
    out = pin_recipe(recipe)
    exemplars, others = seed_prompts(recipe, data_dir)
    log.info("%d harmful train prompts as exemplars; %d more seed prompts to stay away from", len(exemplars),
             len(others))
    i = recipe.instructions
    keep = InstructionFilter(i.min_words, i.max_words, i.near_duplicate, request=i.template)
    keep.remember(others)
    generator, tokenizer = open_generator(recipe.generator)
    start = time.perf_counter()
    summary = generate_instructions(generator, tokenizer, exemplars, str(out / "instructions"), i.count, i.k,
                                    i.template, i.prefix, i.sampling, keep, seed=i.sampling.seed,
                                    batch_size=recipe.generator.batch_size, shard_rows=recipe.shard_rows,
                                    progress=progress, fill=i.fill)
    rows = read_shards(out / "instructions")
    summary["samples"] = [r["instruction"] for r in rows if r["kept"]][:SAMPLES]
    return _record(out, "instructions", summary, time.perf_counter() - start)


def kept_instructions(out: Path) -> list[tuple[int, str]]:
    if not (out / "instructions").is_dir():
        raise InputError(f"{out}: no instructions yet; run `guard-sdk augment instructions` first")
    return [(r["id"], r["instruction"]) for r in read_shards(out / "instructions") if r["kept"]]


def export_instructions(recipe: AugmentRecipe, label: int, path: str | Path) -> dict[str, Any]:
    """Write the kept instructions as labelled rows (jsonl: prompt, label, category), each labelled by the
    request's intent: benign look-alikes the generator was asked to keep harmless are safe (0) by construction,
    as Alpaca's instructions are, where a teacher trained on scary vocabulary would call half of them unsafe."""
    from guard_sdk.training.data.schema import LABELS

    out = Path(recipe.output_dir)
    rows = kept_instructions(out)
    if not rows:
        raise InputError(f"{out}: no kept instructions to export")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    with partial.open("w", encoding="utf-8") as f:
        for key, text in rows:
            # A data file's rows are named by its file name when a recipe reads it: no source column.
            f.write(json.dumps({"prompt": text, "label": label, "category": _category(recipe.instructions, key, label),
                                "id": key}, ensure_ascii=False) + "\n")
    os.replace(partial, target)
    return {"rows": len(rows), "label": LABELS[label], "file": str(target)}


def _category(i: InstructionStage, key: int, label: int) -> str:
    """The taxonomy category request ``key`` asked for (``asked_category``) of an unsafe row; else
    "generated <label>"."""
    from guard_sdk.training.data.schema import LABELS

    return (asked_category(i, key) if label else None) or f"generated {LABELS[label]}"


def asked_category(i: InstructionStage, key: int) -> str | None:
    """The taxonomy category of the fill values request ``key`` was asked with (redrawn as generate_instructions
    drew them: k is 0, so nothing else was drawn first), where the recipe maps one."""
    if not i.categories:
        return None
    drawn = drawn_fill(i.fill, random.Random(f"{i.sampling.seed}:{key}")).values()
    return next((i.categories[v] for v in drawn if v in i.categories), None)


def run_responses(recipe: AugmentRecipe, progress: bool = True) -> dict[str, Any]:
    out = pin_recipe(recipe)
    instructions = kept_instructions(out)
    spec = recipe.responses.responder or recipe.generator
    responder, tokenizer = open_generator(spec)
    start = time.perf_counter()
    summary = generate_responses(responder, tokenizer, instructions, str(out / "responses"),
                                 recipe.responses.compliant_prefix, recipe.responses.sampling,
                                 batch_size=spec.batch_size, shard_rows=recipe.shard_rows, progress=progress)
    rows = read_shards(out / "responses")
    summary["samples"] = [{"prompt": r["prompt"], "kind": r["kind"], "response": r["response"]}
                          for r in rows.select(range(min(SAMPLES, len(rows))))]
    return _record(out, "responses", summary, time.perf_counter() - start)


def run_labels(recipe: AugmentRecipe, progress: bool = True) -> dict[str, Any]:
    """Score each kept instruction as a prompt, and each response (if that stage ran) as a response."""
    out = pin_recipe(recipe)
    kept = kept_instructions(out)
    asked = {str(key): asked_category(recipe.instructions, key) for key, _ in kept}  # the harm each request named
    rows: list[dict[str, Any]] = [{"id": str(key), "prompt": text, "response": None, "category": asked[str(key)]}
                                  for key, text in kept]
    if (out / "responses").is_dir():
        rows += [{"id": r["id"], "prompt": r["prompt"], "response": r["response"],
                  "category": asked.get(r["id"].partition(":")[0])} for r in read_shards(out / "responses")]
    else:
        log.warning("%s: no responses yet; labelling the instructions alone", out)
    pin_teacher(out / "labels", recipe.teacher)
    teacher = open_teacher(recipe.teacher)
    start = time.perf_counter()
    summary = label(teacher, rows, str(out / "labels"), batch_size=recipe.teacher.batch_size,
                    shard_rows=recipe.shard_rows, progress=progress)
    labelled = read_shards(out / "labels")
    kinds: dict[str, dict[str, int]] = {}
    for key, score in zip(labelled["id"], labelled["teacher_score"]):
        kind = key.partition(":")[2] or "prompt"
        counts = kinds.setdefault(kind, {"unsafe": 0, "safe": 0})
        counts["unsafe" if score > 0.5 else "safe"] += 1
    summary["by_kind"] = kinds
    summary["teacher"] = teacher.name
    summary["samples"] = [{"prompt": r["prompt"], "response": r["response"], "teacher_score": r["teacher_score"]}
                          for r in labelled.select(range(min(SAMPLES, len(labelled))))]
    return _record(out, "labels", summary, time.perf_counter() - start)
