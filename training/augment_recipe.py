"""Augmentation recipes: YAML files that name every knob of a HarmAug run, read as strictly as training recipes.

A recipe says where the seed data comes from (its train split's harmful prompts are the exemplars), which model
writes instructions and answers them, where each runs (local transformers, or an OpenAI-compatible server), the
request template and prefixes, sampling, filters and the teacher.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from guard_sdk.training.augment import Sampling
from guard_sdk.training.recipe import DataRecipe, RecipeError, check_data, read_recipe

BACKENDS = ("local", "openai")
TEACHERS = ("llama_guard", "classifier")


@dataclass(frozen=True)
class ModelSpec:
    """Where a generator, responder or Llama-Guard-style judge runs."""

    backend: str  # local: transformers on this machine (CPU or CUDA); openai: an OpenAI-compatible server
    model: str  # local: folder, hub id or package:MODULE; openai: the name the server serves the model as
    gguf_file: str | None  # local: a GGUF file inside `model`, loaded through transformers
    tokenizer: str | None  # openai: folder or hub id whose chat template builds the prompts (null: model)
    base_url: str | None  # openai: e.g. http://127.0.0.1:8000 (vLLM, SGLang, TGI, llama.cpp server)
    api_key_env: str | None  # openai: the environment variable that holds the key (never the key itself)
    batch_size: int  # texts per call: one forward pass locally, one round of requests over HTTP
    concurrency: int  # openai: requests in flight at once
    timeout_s: float  # openai: per request
    retries: int  # openai: after a timeout, a dropped connection or a retryable status


@dataclass(frozen=True)
class InstructionStage:
    count: int  # generation requests; a rerun with a larger count asks only the new ones
    k: int  # harmful seed exemplars per request
    template: str  # the request; the exemplars follow it, numbered
    prefix: str  # the assistant's turn starts with this; the model continues it
    sampling: Sampling
    min_words: int
    max_words: int
    near_duplicate: float  # word-trigram Jaccard at or above which an instruction repeats a kept or seed one


@dataclass(frozen=True)
class ResponseStage:
    responder: ModelSpec | None  # null: the generator answers its own instructions
    compliant_prefix: str  # the first of the two answers starts with this ("Sure, here is")
    sampling: Sampling


@dataclass(frozen=True)
class TeacherSpec:
    kind: str  # llama_guard: a causal LM asked Llama Guard 3's question; classifier: P(unsafe) of a classifier
    model: ModelSpec | None  # llama_guard: where the judge runs
    classifier: str | None  # classifier: a bundle folder, a checkpoint, or `default` (the embedded guard)
    max_length: int  # classifier checkpoint: tokens per window
    batch_size: int  # rows per scoring call
    logprobs: int  # llama_guard over openai: top logprobs asked for the first answer token


@dataclass(frozen=True)
class AugmentRecipe:
    name: str
    output_dir: str  # instructions/, responses/, labels/ (Parquet shards), recipe.json, summary.json
    data: DataRecipe  # exemplars: harmful prompts of the train split; dedup: every seed and holdout prompt
    generator: ModelSpec
    instructions: InstructionStage
    responses: ResponseStage
    teacher: TeacherSpec
    shard_rows: int  # rows per Parquet shard: what a killed run can lose at most, per stage


def _check_model(spec: ModelSpec, where: str) -> None:
    if spec.backend not in BACKENDS:
        raise RecipeError(f"{where}.backend must be one of {', '.join(BACKENDS)}, got {spec.backend!r}")
    if spec.backend == "openai" and not spec.base_url:
        raise RecipeError(f"{where}.base_url is needed with backend openai")
    if spec.backend == "local" and spec.base_url:
        raise RecipeError(f"{where}.base_url applies only to backend openai; write null")
    for name in ("batch_size", "concurrency", "timeout_s"):
        if getattr(spec, name) <= 0:
            raise RecipeError(f"{where}.{name} must be positive")
    if spec.retries < 0:
        raise RecipeError(f"{where}.retries must be 0 or more")


def _check_sampling(sampling: Sampling, where: str) -> None:
    if sampling.max_new_tokens <= 0 or sampling.temperature < 0 or not 0 < sampling.top_p <= 1:
        raise RecipeError(f"{where}: max_new_tokens > 0, temperature >= 0 and top_p in (0, 1] are needed")


def check(recipe: AugmentRecipe, where: str) -> None:
    """What types cannot say: ranges, the known names, and fields that only some choices use."""
    check_data(recipe.data, f"{where}: data")
    _check_model(recipe.generator, f"{where}: generator")
    i, t = recipe.instructions, recipe.teacher
    if i.count <= 0 or i.k <= 0:
        raise RecipeError(f"{where}: instructions.count and instructions.k must be positive")
    if not i.template.strip():
        raise RecipeError(f"{where}: instructions.template is empty")
    if not 0 < i.min_words <= i.max_words:
        raise RecipeError(f"{where}: instructions needs 0 < min_words <= max_words")
    if not 0 < i.near_duplicate <= 1:
        raise RecipeError(f"{where}: instructions.near_duplicate must lie in (0, 1]")
    _check_sampling(i.sampling, f"{where}: instructions.sampling")
    _check_sampling(recipe.responses.sampling, f"{where}: responses.sampling")
    if recipe.responses.responder is not None:
        _check_model(recipe.responses.responder, f"{where}: responses.responder")
    if t.kind not in TEACHERS:
        raise RecipeError(f"{where}: teacher.kind must be one of {', '.join(TEACHERS)}, got {t.kind!r}")
    if (t.kind == "llama_guard") != (t.model is not None) or (t.kind == "classifier") != (t.classifier is not None):
        raise RecipeError(f"{where}: teacher.kind llama_guard takes teacher.model, classifier takes "
                          "teacher.classifier; write null for the other")
    if t.model is not None:
        _check_model(t.model, f"{where}: teacher.model")
    if t.max_length <= 0 or t.batch_size <= 0 or t.logprobs <= 0:
        raise RecipeError(f"{where}: teacher.max_length, batch_size and logprobs must be positive")
    if recipe.shard_rows <= 0:
        raise RecipeError(f"{where}: shard_rows must be positive")


def load_augment_recipe(path: str | Path) -> AugmentRecipe:
    """Read and check an augmentation recipe; no model is loaded until this returns."""
    recipe = read_recipe(path, AugmentRecipe)
    check(recipe, str(path))
    return recipe
