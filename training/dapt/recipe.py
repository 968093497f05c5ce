"""Recipes of few-shot adaptation (DAPT, training/dapt/adapt.py) and of its experiment
(training/experiments/dapt.py).

Read strictly like every recipe (training/recipe.py): every field named, each of its type, ranges checked
before a model is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from guard_sdk.training.recipe import (
    RecipeError,
    TrainRecipe,
    check_positive,
    check_splits,
    check_train,
    read_recipe,
)

METHODS = ("prompt-tuning", "lora", "full")  # full: every weight trains (the baselines without PEFT)


PEFT_METHODS = METHODS[:2]


NEIGHBOUR_LABELS = ("example", "own")


DEFAULT_ADAPT_RECIPE = "adapt.yaml"  # shipped in guard_sdk.training's recipes/ folder


@dataclass(frozen=True)
class NeighbourRecipe:
    """How the few examples are augmented from the pool of rows of rules the guard already knows."""

    encoder: str  # sentence encoder: a sentence-transformers folder, hub id, or package:MODULE
    batch_size: int  # texts per encoder call
    k: int  # neighbours taken per example, the nearest first (0: the examples alone)
    min_similarity: float  # cosine cut: a pool row less similar than this is never taken
    label: str  # example: a neighbour takes the label of the example it was found for; own: it keeps its own


@dataclass(frozen=True)
class LoraRecipe:
    r: int
    alpha: int
    dropout: float
    target_modules: list[str] | None  # null: peft's default for the architecture (query, value for BERT)
    learning_rate: float


@dataclass(frozen=True)
class PromptTuningRecipe:
    virtual_tokens: int  # learned input vectors put before each window; they count against max_length
    # The vectors start as this text's embeddings, tokenized as the base does (repeated to fill): for an encoder
    # guard the text opens with [CLS], so the head still reads a [CLS] at position 0 as it was trained to. null:
    # random vectors, which put an untrained token where the head looks and lose what the base knew.
    init_text: str | None
    learning_rate: float


@dataclass(frozen=True)
class AdaptRecipe:
    name: str
    method: str  # prompt-tuning | lora | full (the command line's --method wins)
    min_examples: int  # fewer examples than this are refused: nothing can be learned from them
    neighbours: NeighbourRecipe
    lora: LoraRecipe
    prompt_tuning: PromptTuningRecipe
    train: TrainRecipe  # train.learning_rate is full fine-tuning's; PEFT methods take their own
    threshold: float  # the adapted guard's decision cut: a few examples leave no dev split to calibrate on


@dataclass(frozen=True)
class ExperimentData:
    data_dir: str | None  # None: $GUARD_DATA_DIR, else ../shared/data
    benign: str  # built-in source of the safe rows (label 0) beside HarmBench's harmful behaviours
    benign_rows: int  # safe rows drawn from it, by seed
    splits: dict[str, float]  # train, dev, test shares of the known rules' rows (train is the pool)
    rule_example_share: float  # share of the new rule's rows that examples are drawn from; the rest is judged
    seed: int


@dataclass(frozen=True)
class DaptExperimentRecipe:
    """HarmBench semantic categories each in turn the new rule: a base guard is trained without it, then
    adapted from k of its rows (and k safe rows) by each method, over several seeds."""

    name: str
    table: str  # the markdown file the command writes
    output_dir: str
    model: str  # the base guard's starting weights (hub id, folder or package:MODULE)
    data: ExperimentData
    rules: list[str]  # HarmBench SemanticCategory values
    shots: list[int]  # k: rows of the new rule per adaptation (as many safe rows join them)
    seeds: list[int]
    peft_methods: list[str]  # the PEFT of rows (b) and (d), each its own rows
    base_train: TrainRecipe  # the base guard's training on the known rules
    adapt: AdaptRecipe


def check_adapt(recipe: AdaptRecipe, where: str) -> None:
    """What types cannot say: the known names and the ranges."""
    n, t = recipe.neighbours, recipe.train
    if recipe.method not in METHODS:
        raise RecipeError(f"{where}: method must be one of {', '.join(METHODS)}, got {recipe.method!r}")
    if n.label not in NEIGHBOUR_LABELS:
        raise RecipeError(f"{where}: neighbours.label must be one of {', '.join(NEIGHBOUR_LABELS)}, got {n.label!r}")
    if n.k < 0 or not -1 <= n.min_similarity <= 1 or n.batch_size <= 0:
        raise RecipeError(f"{where}: neighbours.k must be >= 0, batch_size positive, min_similarity in [-1, 1]")
    check_positive({"min_examples": recipe.min_examples, "lora.r": recipe.lora.r, "lora.alpha": recipe.lora.alpha,
                    "lora.learning_rate": recipe.lora.learning_rate,
                    "prompt_tuning.virtual_tokens": recipe.prompt_tuning.virtual_tokens,
                    "prompt_tuning.learning_rate": recipe.prompt_tuning.learning_rate}, where)
    check_train(t, where)
    if not 0 <= recipe.lora.dropout < 1 or not 0 <= recipe.threshold <= 1:
        raise RecipeError(f"{where}: lora.dropout must lie in [0, 1) and threshold in [0, 1]")
    if recipe.prompt_tuning.virtual_tokens >= t.max_length - 2:
        raise RecipeError(f"{where}: prompt_tuning.virtual_tokens must leave room for text in train.max_length")


def default_adapt_recipe() -> Path:
    """The adapt recipe that ships with the package (training/recipes/adapt.yaml)."""
    return Path(str(resources.files("guard_sdk.training") / "recipes" / DEFAULT_ADAPT_RECIPE))


def load_adapt_recipe(path: str | Path | None = None, overrides: Sequence[str] = (),
                      method: str | None = None) -> AdaptRecipe:
    """Read and check an adapt recipe (default: the shipped one), ``method`` overriding its own."""
    path = Path(path) if path is not None else default_adapt_recipe()
    recipe = read_recipe(path, AdaptRecipe, overrides)
    if method is not None:
        from dataclasses import replace

        recipe = replace(recipe, method=method)
    check_adapt(recipe, str(path))
    return recipe


def load_experiment(path: str | Path, overrides: Sequence[str] = ()) -> DaptExperimentRecipe:
    """Read and check the experiment's recipe; nothing is trained until this returns."""
    recipe = read_recipe(path, DaptExperimentRecipe, overrides)
    where = str(path)
    check_adapt(recipe.adapt, f"{where}: adapt")
    check_train(recipe.base_train, where, "base_train")
    d = recipe.data
    check_splits(d.splits, where)
    if not 0 < d.rule_example_share < 1 or d.benign_rows <= 0:
        raise RecipeError(f"{where}: data.rule_example_share must lie in (0, 1) and data.benign_rows be positive")
    if not recipe.rules or not recipe.shots or not recipe.seeds or min(recipe.shots) <= 0:
        raise RecipeError(f"{where}: rules, shots and seeds must be non-empty, shots positive")
    unknown = sorted(set(recipe.peft_methods) - set(PEFT_METHODS))
    if unknown or not recipe.peft_methods:
        raise RecipeError(f"{where}: peft_methods must name some of {', '.join(PEFT_METHODS)}, got {unknown}")
    return recipe
