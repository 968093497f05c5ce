"""Augmentation recipes: YAML files that name every knob of a HarmAug run, read as strictly as training recipes.

A recipe says where the seed data comes from (its train split's harmful prompts are the exemplars), which model
writes instructions and answers them, where each runs (local transformers, or an OpenAI-compatible server), the
request template and prefixes, sampling, filters and the teacher.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from guard_sdk.categories import NAMES
from guard_sdk.training.harmaug.generators import Sampling
from guard_sdk.training.harmaug.requests import template_fields
from guard_sdk.training.recipe import (
    DataRecipe,
    ModelSpec,
    RecipeError,
    TeacherSpec,
    check_data,
    check_model,
    check_teacher,
    read_recipe,
)


@dataclass(frozen=True)
class InstructionStage:
    count: int  # generation requests; a rerun with a larger count asks only the new ones
    k: int  # harmful seed exemplars per request (0: none)
    template: str  # the request; the exemplars follow it, numbered; {name} takes a value drawn from fill[name]
    fill: dict[str, list[str]]  # values for the template's placeholders, one drawn per request ({}: none)
    prefix: str  # the assistant's turn starts with this; the model continues it
    sampling: Sampling
    min_words: int
    max_words: int
    near_duplicate: float  # word-trigram Jaccard at or above which an instruction repeats a kept or seed one
    # A fill value -> the taxonomy category (guard_sdk.categories) of what it asks for, which `augment export`
    # writes on each row asked with it ({}: "generated safe" / "generated unsafe"). Needs k: 0, so that export
    # can redraw each request's values from its key alone.
    categories: dict[str, str]


@dataclass(frozen=True)
class ResponseStage:
    responder: ModelSpec | None  # null: the generator answers its own instructions
    compliant_prefix: str  # the first of the two answers starts with this ("Sure, here is")
    sampling: Sampling


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


def _check_sampling(sampling: Sampling, where: str) -> None:
    if sampling.max_new_tokens <= 0 or sampling.temperature < 0 or not 0 < sampling.top_p <= 1:
        raise RecipeError(f"{where}: max_new_tokens > 0, temperature >= 0 and top_p in (0, 1] are needed")


def check(recipe: AugmentRecipe, where: str) -> None:
    """What types cannot say: ranges, the known names, and fields that only some choices use."""
    check_data(recipe.data, f"{where}: data")
    check_model(recipe.generator, f"{where}: generator")
    i, t = recipe.instructions, recipe.teacher
    if i.count <= 0 or i.k < 0:
        raise RecipeError(f"{where}: instructions.count must be positive and instructions.k 0 or more")
    if not i.template.strip():
        raise RecipeError(f"{where}: instructions.template is empty")
    try:
        named = template_fields(i.template)
    except ValueError as e:
        raise RecipeError(f"{where}: instructions.template: {e} (write a literal brace as {{{{ or }}}})") from e
    if named != set(i.fill) or not all(i.fill.values()):
        raise RecipeError(f"{where}: instructions.fill must give values for exactly the template's placeholders "
                          f"({', '.join(sorted(named)) or 'none'}), got {', '.join(sorted(i.fill)) or 'none'}")
    if i.categories:
        values = {v for vs in i.fill.values() for v in vs}
        wrong = [f"{v}: {c}" for v, c in i.categories.items() if v not in values or c not in NAMES]
        if i.k or wrong:
            raise RecipeError(f"{where}: instructions.categories maps fill values to taxonomy categories "
                              f"({', '.join(NAMES)}) and needs k: 0; wrong: {'; '.join(wrong) or 'k'}")
    if not 0 < i.min_words <= i.max_words:
        raise RecipeError(f"{where}: instructions needs 0 < min_words <= max_words")
    if not 0 < i.near_duplicate <= 1:
        raise RecipeError(f"{where}: instructions.near_duplicate must lie in (0, 1]")
    _check_sampling(i.sampling, f"{where}: instructions.sampling")
    _check_sampling(recipe.responses.sampling, f"{where}: responses.sampling")
    if recipe.responses.responder is not None:
        check_model(recipe.responses.responder, f"{where}: responses.responder")
    check_teacher(t, f"{where}: teacher")
    if recipe.shard_rows <= 0:
        raise RecipeError(f"{where}: shard_rows must be positive")


def load_augment_recipe(path: str | Path, overrides: Sequence[str] = ()) -> AugmentRecipe:
    """Read and check an augmentation recipe (with ``--set`` overrides); no model is loaded until this returns."""
    recipe = read_recipe(path, AugmentRecipe, overrides)
    check(recipe, str(path))
    return recipe
