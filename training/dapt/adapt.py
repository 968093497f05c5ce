"""Few-shot adaptation of a guard to a new safety rule: DAPT (Balashankar et al., 2023).

A handful of examples of the new rule (rows the user did not choose) → each example's nearest rows among the
rules the guard already knows (training/dapt/neighbours.py), labelled as the recipe says → parameter-efficient
training with peft (prompt tuning or LoRA; the base weights stay frozen), or full fine-tuning for comparison →
a plain checkpoint (LoRA merged, prompt tuning's virtual tokens baked into the vocabulary) that `guard-sdk
export` turns into a bundle like any other.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from guard_sdk.errors import InputError
from guard_sdk.export.checkpoint import TRAINING_RECORD, bundle_encoder, default_overlap, model_inputs
from guard_sdk.training import data as D
from guard_sdk.training.dapt.neighbours import embed, load_encoder, nearest, neighbour_rows
from guard_sdk.training.dapt.recipe import AdaptRecipe
from guard_sdk.training.data.splits import data_summary
from guard_sdk.training.recipe import pin_record
from guard_sdk.training.shards import replace_dir
from guard_sdk.training.trainer import encode_first_windows, fit, load_classifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Adapted:
    """A trained adaptation, before it is saved: the model as trained (a peft model for PEFT methods)."""

    model: Any
    tokenizer: Any
    encoder: Any  # the windows it was trained on (prompt tuning: max_length less its virtual tokens)
    train: Any  # the rows it saw: examples, then neighbours
    examples: int
    neighbours: int
    trainable_parameters: int
    total_parameters: int
    metrics: dict[str, Any]


def _key(prompt: str, response: str | None) -> tuple[str, str | None]:
    return D.normalize(prompt), None if response is None else D.normalize(response)


def clean_examples(examples: Any, shots: int | None, min_examples: int, seed: int) -> Any:
    """The few-shot rows, checked: labelled, each once, ``shots`` of them where there are more.

    Duplicates (the same normalised prompt and response) are kept once; the same text under two labels is
    refused. Fewer rows than ``shots`` asked: all are used, with a warning; fewer than ``min_examples``: refused.
    """
    if any(v is None for v in examples["label"]):
        raise D.DataError("every example needs a label (1 unsafe, 0 safe)")
    first: dict[tuple[str, str | None], int] = {}
    for i, (p, r, y) in enumerate(zip(examples["prompt"], examples["response"], examples["label"])):
        key = _key(p, r)
        if key in first and examples[first[key]]["label"] != y:
            raise D.DataError(f"example {i + 1} repeats example {first[key] + 1} with the other label; "
                              "keep the one that is right")
        first.setdefault(key, i)
    if len(first) < len(examples):
        log.warning("%d duplicate example(s) dropped: each text is learned from once", len(examples) - len(first))
        examples = examples.select(sorted(first.values()))
    if shots is not None and len(examples) > shots:
        examples = examples.select(sorted(random.Random(seed).sample(range(len(examples)), shots)))
    elif shots is not None and len(examples) < shots:
        log.warning("%d example(s), fewer than the %d asked: adapting on all %d", len(examples), shots, len(examples))
    if len(examples) < min_examples:
        raise D.DataError(f"{len(examples)} distinct example(s); at least {min_examples} are needed (recipe "
                          "min_examples) to learn a rule from")
    return examples


def clean_pool(pool: Any, examples: Any) -> Any:
    """The pool less the rows that are examples themselves (a row must not be its own neighbour)."""
    taken = {_key(p, r) for p, r in zip(examples["prompt"], examples["response"])}
    keep = [i for i, (p, r) in enumerate(zip(pool["prompt"], pool["response"])) if _key(p, r) not in taken]
    if len(keep) < len(pool):
        log.warning("%d pool row(s) are examples too; they are left out of the pool", len(pool) - len(keep))
    return pool.select(keep)


def check_pool(pool: Any | None) -> None:
    if pool is None or len(pool) == 0:
        raise D.DataError("the pool is empty: DAPT augments the examples from rows of the rules the guard knows. "
                          "Pass rows with --pool, or adapt on the examples alone with --set neighbours.k=0")


def check_base(base: str) -> None:
    """Refuse a base that is no checkpoint before the run folder records it: a typo would pin the folder to it."""
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(base)
    except (OSError, ValueError) as e:
        first = str(e).split(". ")[0].splitlines()[0]  # transformers lists every known model type after it
        raise InputError(f"--base {base}: not a checkpoint folder or hub id ({first})") from None


def training_rows(examples: Any, pool: Any | None, recipe: AdaptRecipe, pool_vectors: np.ndarray | None = None,
                  encoder: Any = None, progress: bool = True) -> tuple[Any, int]:
    """Examples plus their neighbours from ``pool`` (rows of the known rules), and how many neighbours joined.

    ``pool_vectors``: the pool's embeddings where the caller keeps them (the experiment embeds a pool once).
    """
    n = recipe.neighbours
    if n.k == 0:
        return examples, 0
    check_pool(pool)
    encoder = encoder or load_encoder(n.encoder)
    if pool_vectors is None:
        pool_vectors = embed(encoder, pool, n.batch_size, progress)
    found = nearest(embed(encoder, examples, n.batch_size, False), pool_vectors, n.k, n.min_similarity)
    extra = neighbour_rows(examples, pool, found, n.label)
    if extra is None:
        log.warning("no pool row is within similarity %.2f of an example: adapting on the examples alone",
                    n.min_similarity)
        return examples, 0
    return D.concat([examples, extra]), len(extra)


def with_peft(model: Any, base: str, recipe: AdaptRecipe) -> Any:
    """``model`` (loaded from ``base``) wrapped for the recipe's method, its base weights frozen; ``full`` trains
    everything."""
    if recipe.method == "full":
        return model
    from peft import LoraConfig, PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

    if recipe.method == "lora":
        lo = recipe.lora
        config = LoraConfig(task_type=TaskType.SEQ_CLS, r=lo.r, lora_alpha=lo.alpha, lora_dropout=lo.dropout,
                            target_modules=lo.target_modules)
    else:
        pt = recipe.prompt_tuning
        init = ({"prompt_tuning_init": PromptTuningInit.TEXT, "prompt_tuning_init_text": pt.init_text,
                 "tokenizer_name_or_path": base} if pt.init_text is not None else {})
        config = PromptTuningConfig(task_type=TaskType.SEQ_CLS, num_virtual_tokens=pt.virtual_tokens, **init)
    return get_peft_model(model, config)


def learning_rate(recipe: AdaptRecipe) -> float:
    return {"full": recipe.train.learning_rate, "lora": recipe.lora.learning_rate,
            "prompt-tuning": recipe.prompt_tuning.learning_rate}[recipe.method]


def window_length(recipe: AdaptRecipe) -> int:
    """Tokens of text per window: prompt tuning's virtual tokens take their share of max_length."""
    virtual = recipe.prompt_tuning.virtual_tokens if recipe.method == "prompt-tuning" else 0
    return recipe.train.max_length - virtual


def train_adapter(base: str, examples: Any, pool: Any | None, recipe: AdaptRecipe, work: Path,
                  pool_vectors: np.ndarray | None = None, encoder: Any = None, progress: bool = True) -> Adapted:
    """Augment, then train the recipe's method on ``base``; checkpoints under ``work``/checkpoints."""
    rows, added = training_rows(examples, pool, recipe, pool_vectors, encoder, progress)
    if len(set(rows["label"])) < 2:
        raise D.DataError("the examples and their neighbours are all of one label: a guard trained on one class "
                          "learns to give it to everything. Add examples of the other label, or set "
                          "neighbours.label: own so that neighbours keep the label they have")
    model, tokenizer = load_classifier(base)
    work.mkdir(parents=True, exist_ok=True)
    # Windows as the exported bundle (max_length, virtual tokens included) cuts them: the same text per window
    # and the same overlap, so the scores here are the bundle's.
    text_encoder = bundle_encoder(tokenizer, work, window_length(recipe),
                                  window_overlap=default_overlap(recipe.train.max_length))
    t = recipe.train
    train = encode_first_windows(rows, text_encoder, model_inputs(model, tokenizer), t.punctuation_flip, t.seed)
    model = with_peft(model, base, recipe)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("%s: %d rows (%d examples, %d neighbours); %d of %d parameters train", recipe.method, len(rows),
             len(examples), added, trainable, total)
    metrics = fit(model, tokenizer, train, t, learning_rate(recipe), work / "checkpoints", progress)
    return Adapted(model, tokenizer, text_encoder, rows, len(examples), added, trainable, total, metrics)


def merged(adapted: Adapted, method: str) -> Any:
    """A plain transformers model of the adaptation: LoRA merged, prompt tuning's tokens baked in (the
    tokenizer then puts them first), the trained head in place."""
    if method == "full":
        return adapted.model
    if method == "lora":
        return adapted.model.merge_and_unload()
    from guard_sdk.training.dapt.prompt_baking import bake_prompt

    return bake_prompt(adapted.model, adapted.tokenizer)


def adapt(base: str, examples: Any, pool: Any | None, recipe: AdaptRecipe, out: Path, *, shots: int | None = None,
          command: str | None = None, inputs: dict[str, Any] | None = None, progress: bool = True) -> Path:
    """Adapt ``base`` to the rule the examples show and save a plain checkpoint in ``out``/model, with a
    training record (recipe, rows seen, neighbours, threshold) that `guard-sdk export` puts in the model card."""
    examples = clean_examples(examples, shots, recipe.min_examples, recipe.train.seed)
    if recipe.neighbours.k > 0:
        check_pool(pool)
        pool = clean_pool(pool, examples)
    check_base(base)
    pin_record(out, {"base": base, "recipe": asdict(recipe), "inputs": inputs or {}, "shots": shots})
    adapted = train_adapter(base, examples, pool, recipe, out, progress=progress)
    model = merged(adapted, recipe.method)
    record = {
        "recipe": {"name": recipe.name, "model": base, **asdict(recipe)},
        "command": command,
        "inputs": inputs or {},
        "data": data_summary({"train": adapted.train}),
        "threshold": {"value": recipe.threshold, "rule": "fixed", "on": "the adapt recipe"},
        "adapt": {"method": recipe.method, "examples": adapted.examples, "neighbours": adapted.neighbours,
                  "trainable_parameters": adapted.trainable_parameters,
                  "total_parameters": adapted.total_parameters},
        "train_metrics": adapted.metrics,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }

    def save(folder: str) -> None:
        model.save_pretrained(folder)
        adapted.tokenizer.save_pretrained(folder)
        Path(folder, TRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    model_dir = out / "model"
    replace_dir(model_dir, save)
    log.info("saved %s", model_dir)
    return model_dir
