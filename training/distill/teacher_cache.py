"""The teacher's P(unsafe) for every training row, and the HarmAug rows it labelled: scored once, cached
on disk and resumable, since scoring a training set with a large teacher is the slow part."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

SCORE_SHARD_ROWS = 1024  # teacher scores of the train split, cached in shards of this many rows


def with_teacher_scores(rows: Any, teacher: Any, cache: Path, batch_size: int, progress: bool = True) -> Any:
    """``rows`` with a ``soft`` column: the teacher's P(unsafe) of each row, cached (and resumable) under
    ``cache``, since scoring a training set with a large teacher is the slow part. Only texts the cache does
    not hold yet are scored, so rows may be reordered or added between runs."""
    from guard_sdk.training.harmaug.stages import label

    prompts, responses = rows["prompt"], rows["response"]
    label(teacher, [{"id": f"{i:09d}", "prompt": p, "response": r} for i, (p, r) in enumerate(zip(prompts, responses))],
          str(cache), batch_size=batch_size, shard_rows=SCORE_SHARD_ROWS, progress=progress)
    return rows.add_column("soft", cached_scores(cache, prompts, responses))


def cached_scores(folder: Path, prompts: Sequence[str], responses: Sequence[str | None]) -> list[float]:
    """The score ``label`` cached in ``folder`` for each (prompt, response), found by its text's content key:
    never by position or sort order, which change when rows are reordered or added."""
    from guard_sdk.training.harmaug.stages import CONTENT_KEY, content_key
    from guard_sdk.training.shards import read_shards

    cached = read_shards(folder, key=CONTENT_KEY)
    score = dict(zip(cached[CONTENT_KEY], cached["teacher_score"]))
    return [score[content_key(p, r)] for p, r in zip(prompts, responses)]


def augmented_rows(folder: str) -> Any:
    """The rows of a HarmAug run (its labels/ folder: instructions alone, and with the responses it kept),
    source ``harmaug:NAME``, with the hard label of the augmentation's own teacher (score > 0.5) and the
    categories it named (comma-separated taxonomy names, or None)."""
    from guard_sdk.training import data as D
    from guard_sdk.training.shards import read_shards

    source = f"harmaug:{Path(folder).name}"
    return D.to_dataset([D.Row(r["prompt"], r["response"], int(r["teacher_score"] > 0.5), source, r.get("categories"))
                         for r in read_shards(Path(folder) / "labels")])


def labelled_by(folder: Path, spec: Any) -> bool:
    """Whether the HarmAug run in ``folder`` was labelled by ``spec``'s very teacher: a classifier at the same
    path and window, with the same weights (``teacher_identity``, pinned by ``augment label``). Its labels are then
    the scores this teacher would give, and a 1.5B generator's answers, long as they are, are not scored again."""
    import json

    from guard_sdk.training.harmaug.run import teacher_identity

    pinned = folder / "labels" / "recipe.json"
    if spec.kind != "classifier" or not pinned.is_file():
        return False
    record = json.loads(pinned.read_text(encoding="utf-8"))
    teacher = record.get("teacher", {})
    same = (teacher.get("kind"), teacher.get("classifier"), teacher.get("max_length")) == (
        spec.kind, spec.classifier, spec.max_length)
    return same and record.get("identity") == teacher_identity(spec)


def open_distill_teacher(distill: Any, data: Any, load: bool = True) -> Any:
    """The recipe's teacher, loaded (None without ``load``: a process that only reads the cache), after
    pinning ``distill.score_cache`` to it and the data section: called before any data is read, so a missing
    teacher or a cache of another teacher is refused up front. The recipes of an ablation that share a
    teacher and data thus score the train split once."""
    import dataclasses

    from guard_sdk.training.harmaug.run import open_teacher, teacher_identity
    from guard_sdk.training.recipe import pin_record

    teacher_spec = {k: v for k, v in dataclasses.asdict(distill.teacher).items() if k != "batch_size"}
    # A teacher retrained at the same path is another teacher: its identity (weights' hash) is pinned too.
    pin_record(Path(distill.score_cache), {"teacher": teacher_spec, "identity": teacher_identity(distill.teacher),
                                           "data": dataclasses.asdict(data)},
               refuse_foreign=load)  # the process that loads the teacher is the main one
    return open_teacher(distill.teacher) if load else None


def distillation_train_set(distill: Any, teacher: Any, train: Any, progress: bool = True) -> Any:
    """The train split and the augmented rows, each scored by ``teacher`` (its score is the soft label; on
    augmented rows, score > 0.5 is also the hard label, so one teacher labels all they add), cached in
    ``distill.score_cache``; augmented rows this very teacher labelled keep its labels (``labelled_by``)."""
    import datasets

    from guard_sdk.training.shards import read_shards

    cache = Path(distill.score_cache)
    parts = [with_teacher_scores(train, teacher, cache / "train", distill.teacher.batch_size, progress)]
    for folder in distill.augmented:
        rows = augmented_rows(folder)
        if labelled_by(Path(folder), distill.teacher):  # its labels are this teacher's scores: not scored twice
            scored = rows.add_column("soft", list(read_shards(Path(folder) / "labels")["teacher_score"]))
        else:
            scored = with_teacher_scores(rows, teacher, cache / f"harmaug-{Path(folder).name}",
                                         distill.teacher.batch_size, progress)
        hard = [int(p > 0.5) for p in scored["soft"]]
        parts.append(scored.remove_columns("label").add_column("label", hard).cast(parts[0].features))
    return datasets.concatenate_datasets(parts)
