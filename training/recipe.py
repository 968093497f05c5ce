"""Training recipes: YAML files that name every knob (torchtune's rule: no hidden defaults).

A recipe is read into frozen dataclasses; a field that is unknown, missing or of the wrong type is
refused with its dotted name before any data is read or any model is loaded.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from guard_sdk.errors import FolderInUseError, InputError
from guard_sdk.views import check_view_names

CALIBRATION_RULES = ("max_f1", "fixed")
CALIBRATION_BALANCES = ("none", "source")
CATEGORY_BALANCE = ("none", "sqrt")
BACKENDS = ("local", "openai", "llamacpp")
TEACHERS = ("llama_guard", "classifier")
PRECISIONS = ("fp32", "bf16", "fp16")  # fp32 weights throughout, or the Trainer's mixed precision
T = TypeVar("T")


class RecipeError(InputError):
    """A recipe file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class SourceSpec:
    """A data source: a built-in name, a file, a saved Dataset folder or a hub id, with its column mapping."""

    data: str
    columns: dict[str, str] | None  # label may name several columns joined by "|": the first with a value counts
    split: str | None
    config: str | None  # a hub dataset's configuration (subset), e.g. wildguardtrain of allenai/wildguardmix


@dataclass(frozen=True)
class DataRecipe:
    data_dir: str | None  # None: $GUARD_DATA_DIR, else ../shared/data
    sources: list[SourceSpec]
    holdout: list[SourceSpec]  # evaluated, never trained on; their twins are removed from train and dev
    splits: dict[str, float]  # train, dev, test shares
    max_train_rows_per_source: int | None
    seed: int


@dataclass(frozen=True)
class TrainRecipe:
    max_length: int
    learning_rate: float
    epochs: float
    batch_size: int  # rows per device per forward pass
    gradient_accumulation_steps: int  # forward passes per optimizer step: effective batch = batch_size × this × devices
    precision: str  # fp32, or bf16 / fp16 mixed precision (bf16 also speeds up CPUs with AVX-512 BF16)
    eval_batch_size: int
    weight_decay: float
    warmup_ratio: float
    class_balanced: bool  # each batch draws safe and unsafe rows with equal probability
    punctuation_flip: float  # share of rows whose final . ! ? is dropped, or a final . added (see trainer.py)
    seed: int
    save_steps: int
    logging_steps: int


@dataclass(frozen=True)
class CalibrationRecipe:
    rule: str  # max_f1: the dev threshold with the best F1; fixed: `threshold` as written
    threshold: float | None
    max_fpr: float | None  # max_f1: the best F1 among cuts whose dev false-positive rate stays at or under this
    balance: str  # none: every dev row alike; source: every dev source alike (F1 and the false-positive rate)


@dataclass(frozen=True)
class CategoriesRecipe:
    """A category head trained with the unsafe head (training/categories.py): P(category) for each taxonomy
    category the data supports, beside P(unsafe)."""

    min_train_rows: int  # unsafe train rows of a category it takes to score it ...
    min_dev_rows: int  # ... and unsafe dev rows to calibrate its threshold on; the others are listed as unsupported
    weight: float  # the categories' binary cross-entropy is added to the unsafe loss times this
    balance: str  # none: every known row alike; sqrt: a category's positive rows weighted (training/categories.py)


@dataclass(frozen=True)
class DisguisesRecipe:
    """Disguised copies of train rows (training/evasion/augment.py): what a guard must read through."""

    share: float  # of the train rows, each copied once under one disguise
    kinds: list[str]  # which disguises (augment.KINDS); a pair takes only the padding ones, `refused` a harmful prompt
    seed: int


@dataclass(frozen=True)
class ExportRecipe:
    bundle: str  # folder the guard bundle is written to (replaced if it exists)
    name: str
    formats: list[str]
    precisions: list[str]
    max_length: int
    int8_tolerance: float  # max |ΔP(unsafe)| of int8 against PyTorch on the parity windows
    int8_min_agreement: float  # least share of the same decisions there
    views: list[str]  # the text views the bundle declares (guard_sdk.views; docs/evasion.md says which help)


@dataclass(frozen=True)
class ModelSpec:
    """Where a generator, responder or Llama-Guard-style judge runs."""

    backend: str  # local: transformers on this machine (CPU or CUDA); openai: an OpenAI-compatible server;
    # llamacpp: llama.cpp's server started in this process on 127.0.0.1 (GGUF files, 20-40x transformers on CPU)
    model: str  # local, llamacpp: folder, hub id or package:MODULE; openai: the name the server serves it as
    gguf_file: str | None  # local, llamacpp: a GGUF file inside `model`
    tokenizer: str | None  # openai, llamacpp: folder or hub id whose chat template builds the prompts (null: model)
    base_url: str | None  # openai: e.g. http://127.0.0.1:8000 (vLLM, SGLang, TGI, llama.cpp server)
    api_key_env: str | None  # openai: the environment variable that holds the key (never the key itself)
    batch_size: int  # texts per call: one forward pass locally, one round of requests over HTTP
    concurrency: int  # openai, llamacpp: requests in flight at once (llamacpp: its parallel slots)
    timeout_s: float  # openai, llamacpp: per request
    retries: int  # openai, llamacpp: after a timeout, a dropped connection or a retryable status


@dataclass(frozen=True)
class TeacherSpec:
    kind: str  # llama_guard: a causal LM asked Llama Guard 3's question; classifier: P(unsafe) of a classifier
    model: ModelSpec | None  # llama_guard: where the judge runs
    classifier: str | None  # classifier: a bundle folder, a checkpoint, or `default` (the embedded guard)
    max_length: int  # classifier checkpoint: tokens per window
    batch_size: int  # rows per scoring call
    logprobs: int  # llama_guard over openai: top logprobs asked for the first answer token


@dataclass(frozen=True)
class DistillRecipe:
    """HarmAug's distillation: the teacher scores the train split, augmented rows join it, and the loss mixes
    cross-entropy on hard labels with KL(teacher ‖ student) on the teacher's scores (training/distill/)."""

    teacher: TeacherSpec  # scores the seed train rows (cached, resumable, under OUTPUT_DIR/teacher_scores)
    augmented: list[str]  # augmentation output folders; their labels/ rows join train, scored by `teacher`
    score_cache: str  # the teacher's scores of train and augmented rows; recipes with one teacher and data share it
    ce_weight: float
    kl_weight: float
    temperature: float


@dataclass(frozen=True)
class Recipe:
    name: str
    model: str  # a hub id, a checkpoint folder, or package:MODULE for weights a pip package ships
    gguf_file: str | None  # a GGUF file inside `model` to read the weights and tokenizer from (null: none)
    output_dir: str
    data: DataRecipe
    train: TrainRecipe
    calibration: CalibrationRecipe
    categories: CategoriesRecipe | None  # null: P(unsafe) alone
    disguises: DisguisesRecipe | None  # null: the train rows as they are
    export: ExportRecipe | None
    distill: DistillRecipe | None  # null: plain fine-tuning on the seed data


def _convert(value: Any, kind: Any, where: str) -> Any:
    """``value`` checked against the annotation ``kind``; nested dataclasses are built strictly."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        kind = next(k for k in options if k is not type(None))
        origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        if kind is SourceSpec and isinstance(value, str):
            return SourceSpec(value, None, None, None)
        return _build(kind, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise RecipeError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(kind)
        return [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{where}: expected a mapping, got {value!r}")
        key_kind, item = typing.get_args(kind)
        return {_convert(k, key_kind, where): _convert(v, item, f"{where}.{k}") for k, v in value.items()}
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise RecipeError(f"{where}: expected {kind.__name__}, got {value!r}")
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: expected a mapping of {cls.__name__} fields, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise RecipeError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    missing = [name for name in fields if name not in data]
    if missing:
        raise RecipeError(f"{where}: missing field(s) {', '.join(missing)} (a recipe names every knob; "
                          "write null where a field does not apply)")
    return cls(**{name: _convert(data[name], hints[name], f"{where}.{name}") for name in fields})


def check_model(spec: ModelSpec, where: str) -> None:
    if spec.backend not in BACKENDS:
        raise RecipeError(f"{where}.backend must be one of {', '.join(BACKENDS)}, got {spec.backend!r}")
    if spec.backend == "openai" and not spec.base_url:
        raise RecipeError(f"{where}.base_url is needed with backend openai")
    if spec.backend != "openai" and spec.base_url:
        raise RecipeError(f"{where}.base_url applies only to backend openai; write null")
    if spec.backend == "llamacpp" and not spec.gguf_file:
        raise RecipeError(f"{where}.gguf_file is needed with backend llamacpp (the GGUF file inside model)")
    for name in ("batch_size", "concurrency", "timeout_s"):
        if getattr(spec, name) <= 0:
            raise RecipeError(f"{where}.{name} must be positive")
    if spec.retries < 0:
        raise RecipeError(f"{where}.retries must be 0 or more")


def check_teacher(t: TeacherSpec, where: str) -> None:
    if t.kind not in TEACHERS:
        raise RecipeError(f"{where}.kind must be one of {', '.join(TEACHERS)}, got {t.kind!r}")
    if (t.kind == "llama_guard") != (t.model is not None) or (t.kind == "classifier") != (t.classifier is not None):
        raise RecipeError(f"{where}: kind llama_guard takes model, classifier takes classifier; write null for "
                          "the other")
    if t.model is not None:
        check_model(t.model, f"{where}.model")
    if t.max_length <= 0 or t.batch_size <= 0 or t.logprobs <= 0:
        raise RecipeError(f"{where}: max_length, batch_size and logprobs must be positive")


def check_splits(splits: dict[str, float], where: str) -> None:
    if set(splits) != {"train", "dev", "test"}:
        raise RecipeError(f"{where}: data.splits must name train, dev and test")
    if abs(sum(splits.values()) - 1) > 1e-6 or min(splits.values()) <= 0:
        raise RecipeError(f"{where}: data.splits shares must be positive and sum to 1")


def check_data(data: DataRecipe, where: str) -> None:
    from guard_sdk.training.data.sources import EVALUATION_ONLY

    check_splits(data.splits, where)
    if data.max_train_rows_per_source is not None:
        check_positive({"data.max_train_rows_per_source": data.max_train_rows_per_source}, where)
    if not data.sources:
        raise RecipeError(f"{where}: data.sources is empty")
    trained = sorted({s.data for s in data.sources} & EVALUATION_ONLY)
    if trained:
        raise RecipeError(f"{where}: data.sources names {', '.join(trained)}, kept for evaluation only (the public "
                          "suite's sets never enter training): list them under data.holdout")


def check_positive(values: dict[str, float], where: str) -> None:
    """Each named value above zero, or the first that is not refused by its dotted name."""
    for name, value in values.items():
        if value <= 0:
            raise RecipeError(f"{where}: {name} must be positive, got {value}")


def check_train(t: TrainRecipe, where: str, prefix: str = "train") -> None:
    """A train section's ranges and names; ``prefix`` is its dotted place in the recipe."""
    check_positive({f"{prefix}.{name}": getattr(t, name) for name in (
        "max_length", "learning_rate", "epochs", "batch_size", "eval_batch_size", "gradient_accumulation_steps",
        "save_steps", "logging_steps")}, where)
    if t.precision not in PRECISIONS:
        raise RecipeError(f"{where}: {prefix}.precision must be one of {', '.join(PRECISIONS)}, got {t.precision!r}")
    if not 0 <= t.warmup_ratio < 1:
        raise RecipeError(f"{where}: {prefix}.warmup_ratio must lie in [0, 1)")
    if not 0 <= t.punctuation_flip <= 1:
        raise RecipeError(f"{where}: {prefix}.punctuation_flip must lie in [0, 1]")


def check_export(e: ExportRecipe, where: str) -> None:
    """The export section, checked when the recipe loads rather than after the training it follows."""
    from guard_sdk.export.pipeline import FORMATS

    if problem := check_view_names(tuple(e.views)):
        raise RecipeError(f"{where}: export.{problem}")
    unknown = sorted(set(e.formats) - set(FORMATS))
    if not e.formats or unknown:
        raise RecipeError(f"{where}: export.formats must name some of {', '.join(FORMATS)}"
                          + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    known = {p for f in e.formats for p in FORMATS[f]}
    if not e.precisions or set(e.precisions) - known:
        raise RecipeError(f"{where}: export.precisions must name some of {', '.join(sorted(known))} (what "
                          f"{', '.join(e.formats)} export), got {', '.join(e.precisions) or 'none'}")
    check_positive({"export.max_length": e.max_length}, where)
    for name in ("int8_tolerance", "int8_min_agreement"):
        if not 0 <= getattr(e, name) <= 1:
            raise RecipeError(f"{where}: export.{name} must lie in [0, 1], got {getattr(e, name)}")


def _check(recipe: Recipe, where: str) -> None:
    """What types cannot say: ranges and the known names."""
    t, c = recipe.train, recipe.calibration
    check_data(recipe.data, where)
    if recipe.distill is not None:
        d = recipe.distill
        check_teacher(d.teacher, f"{where}: distill.teacher")
        if d.ce_weight < 0 or d.kl_weight < 0 or d.ce_weight + d.kl_weight == 0 or d.temperature <= 0:
            raise RecipeError(f"{where}: distill needs weights >= 0 (not both 0) and a positive temperature")
        from guard_sdk.training.harmaug.run import labels_finished

        for folder in d.augmented:
            if not labels_finished(folder):
                raise RecipeError(f"{where}: distill.augmented: {folder} is not labelled, or its labelling did not "
                                  "finish; run `guard-sdk augment label` on that augmentation (it resumes)")
    check_train(t, where)
    if c.rule not in CALIBRATION_RULES:
        raise RecipeError(f"{where}: calibration.rule must be one of {', '.join(CALIBRATION_RULES)}, got {c.rule!r}")
    if (c.rule == "fixed") != (c.threshold is not None) or not 0 <= (c.threshold or 0) <= 1:
        raise RecipeError(f"{where}: calibration.threshold is a number in [0, 1] with rule fixed, and null otherwise")
    if c.max_fpr is not None and (c.rule != "max_f1" or not 0 <= c.max_fpr <= 1):
        raise RecipeError(f"{where}: calibration.max_fpr is a number in [0, 1] with rule max_f1, or null")
    if c.balance not in CALIBRATION_BALANCES:
        raise RecipeError(f"{where}: calibration.balance must be one of {', '.join(CALIBRATION_BALANCES)}, "
                          f"got {c.balance!r}")
    if recipe.export is not None:
        check_export(recipe.export, where)
    k = recipe.categories
    if k is not None and (k.min_train_rows < 1 or k.min_dev_rows < 1 or k.weight <= 0):
        raise RecipeError(f"{where}: categories needs min_train_rows and min_dev_rows of 1 or more and a weight > 0")
    if k is not None and k.balance not in CATEGORY_BALANCE:
        raise RecipeError(f"{where}: categories.balance must be one of {', '.join(CATEGORY_BALANCE)}, "
                          f"got {k.balance!r}")
    d = recipe.disguises
    if d is not None:
        from guard_sdk.training.evasion.augment import KINDS

        unknown = sorted(set(d.kinds) - set(KINDS))
        if not 0 < d.share <= 1 or not d.kinds or unknown:
            raise RecipeError(f"{where}: disguises needs a share in (0, 1] and kinds among {', '.join(KINDS)}"
                              + (f" (unknown: {', '.join(unknown)})" if unknown else ""))


def apply_overrides(data: Any, overrides: Sequence[str], where: str) -> Any:
    """``KEY=VALUE`` pairs (a dotted key, a YAML value) set over a recipe's mapping, as torchtune's command line
    takes them, so one run can change a knob without a copy of the file; the key must already exist."""
    import yaml

    for item in overrides:
        key, sep, text = item.partition("=")
        *parents, leaf = key.split(".")
        target = data
        for name in parents:
            target = target.get(name) if isinstance(target, dict) else None
        if not sep or not isinstance(target, dict) or leaf not in target:
            raise RecipeError(f"{where}: --set {item!r}: expected KEY=VALUE with KEY a field of the recipe "
                              "(dotted, e.g. train.max_length=256)")
        try:
            target[leaf] = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise RecipeError(f"{where}: --set {item!r}: the value is not valid YAML ({yaml_problem(e)})") from e
    return data


def yaml_problem(e: Exception) -> str:
    """A YAML error in one line: PyYAML's message spans several, quoting the text around the problem."""
    mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
    if mark is None or problem is None:
        return str(e).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def read_recipe(path: str | Path, cls: type[T], overrides: Sequence[str] = ()) -> T:
    """A YAML file read strictly into the dataclass ``cls``: every field named, each of its type."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: {'a folder, not a recipe file' if path.is_dir() else 'no such recipe file'}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise RecipeError(f"{path}: not valid YAML ({yaml_problem(e)})") from e
    return _build(cls, apply_overrides(data, overrides, str(path)), str(path))


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read and check a recipe (with ``--set`` overrides); nothing is trained until this returns."""
    recipe = read_recipe(path, Recipe, overrides)
    _check(recipe, str(path))
    return recipe


def pin_record(out: Path, record: dict[str, Any], refuse_foreign: bool = True) -> None:
    """Record what a run makes in its output folder (``out``/recipe.json), or refuse a record that differs from
    the one the folder was started with: rows or checkpoints of two recipes in one folder belong to neither. A
    folder that holds other files is refused too (``refuse_foreign``): it is not a run folder, and a run would
    overwrite them. The helper processes of a multi-process run leave that check to the main one, which may be
    writing the folder as they look."""
    import json

    from guard_sdk.training.shards import write_json

    path = out / "recipe.json"
    if path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(k for k in record.keys() | before.keys() if record.get(k) != before.get(k))
        if changed:
            raise RecipeError(f"{out} holds a run of a different recipe (it differs in: {', '.join(changed)}); "
                              "choose another output_dir, or delete the folder to start over")
        return
    if refuse_foreign and out.is_dir() and any(out.iterdir()):  # a run replaces out/model and out/data wholesale
        raise FolderInUseError(f"{out} holds files but no recipe.json, so it is not a guard-sdk run folder, and "
                               "a run replaces the model/ and data/ folders in it; choose a new or empty output "
                               "folder (-o, or the recipe's output_dir)")
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, record)


def recipe_dict(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain data, for the training record and the model card."""
    return dataclasses.asdict(recipe)
