"""Knowledge distillation as HarmAug trains its student: cross-entropy on the hard label mixed with
KL(teacher ‖ student) on the teacher's P(unsafe), 0.5 each as in the paper's released code.

A row without a teacher score (a human-labelled seed row that was never scored) has NaN as its soft label
and contributes cross-entropy alone, so a batch with no soft labels is plain cross-entropy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

NO_SOFT_LABEL = float("nan")
SCORE_SHARD_ROWS = 1024  # teacher scores of the train split, cached in shards of this many rows


def distillation_loss(logits: Any, labels: Any, soft: Any, ce_weight: float = 0.5, kl_weight: float = 0.5,
                      temperature: float = 1.0) -> Any:
    """Mean over rows of ``ce_weight`` · CE(label) + ``kl_weight`` · τ² · KL(teacher_τ ‖ student_τ), or CE alone
    where ``soft`` is NaN.

    ``logits``: (rows, 2) student logits; ``labels``: (rows,) hard labels 0/1; ``soft``: (rows,) the teacher's
    P(unsafe). At temperature τ both sides are softened: the teacher's distribution is softmax(logit(p) / τ),
    and τ² keeps the KL term's gradients on the scale of τ = 1 (Hinton et al., 2015).
    """
    import torch
    import torch.nn.functional as F

    ce = F.cross_entropy(logits, labels, reduction="none")
    has_soft = ~torch.isnan(soft)
    if not bool(has_soft.any()):
        return ce.mean()
    p = soft.clamp(1e-6, 1 - 1e-6).to(logits.dtype)
    teacher_logits = torch.stack([torch.zeros_like(p), torch.log(p) - torch.log1p(-p)], dim=-1)
    teacher = F.softmax(teacher_logits / temperature, dim=-1)
    student = F.log_softmax(logits / temperature, dim=-1)
    kl = (teacher * (torch.log(teacher) - student)).sum(dim=-1) * temperature**2
    mixed = torch.where(has_soft, ce_weight * ce + kl_weight * torch.nan_to_num(kl), ce)
    return mixed.mean()


def distill_trainer_class(ce_weight: float, kl_weight: float, temperature: float, sampler: Any = None) -> type:
    """A ``transformers.Trainer`` whose loss is ``distillation_loss`` on the batch's ``soft`` column, drawing
    training rows from ``sampler`` (class-balanced) when one is given; everything else (mixed precision,
    gradient accumulation, checkpoints and resume, ``accelerate launch`` / ``torchrun``) is the Trainer's."""
    from transformers import Trainer

    from guard_sdk.training.finetune import sampled_trainer_class

    class DistillTrainer(Trainer):
        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            labels, soft = inputs.pop("labels"), inputs.pop("soft")
            outputs = model(**inputs)
            loss = distillation_loss(outputs.logits, labels, soft, ce_weight, kl_weight, temperature)
            return (loss, outputs) if return_outputs else loss

        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()  # the model's forward arguments, kept from each row
            if "soft" not in self._signature_columns:
                self._signature_columns.append("soft")

    return sampled_trainer_class(DistillTrainer, sampler)


def with_teacher_scores(rows: Any, teacher: Any, cache: Path, batch_size: int, progress: bool = True) -> Any:
    """``rows`` with a ``soft`` column: the teacher's P(unsafe) of each row, cached (and resumable) under
    ``cache``, since scoring a training set with a large teacher is the slow part."""
    from guard_sdk.training.augment import label
    from guard_sdk.training.shards import read_shards

    ids = [{"id": f"{i:09d}", "prompt": p, "response": r} for i, (p, r) in enumerate(zip(rows["prompt"],
                                                                                         rows["response"]))]
    label(teacher, ids, str(cache), batch_size=batch_size, shard_rows=SCORE_SHARD_ROWS, progress=progress)
    return rows.add_column("soft", list(read_shards(cache)["teacher_score"]))  # ids sort in row order


def augmented_rows(folder: str) -> Any:
    """The rows of a HarmAug run (its labels/ folder: instructions alone, and with the responses it kept),
    source ``harmaug:NAME``, with the hard label of the augmentation's own teacher (score > 0.5)."""
    from guard_sdk.training import data as D
    from guard_sdk.training.shards import read_shards

    source = f"harmaug:{Path(folder).name}"
    return D.to_dataset([D.Row(r["prompt"], r["response"], int(r["teacher_score"] > 0.5), source)
                         for r in read_shards(Path(folder) / "labels")])


def open_distill_teacher(distill: Any, data: Any, load: bool = True) -> Any:
    """The recipe's teacher, loaded (None without ``load``: a process that only reads the cache), after
    pinning ``distill.score_cache`` to it and the data section: called before any data is read, so a missing
    teacher or a cache of another teacher is refused up front. The recipes of an ablation that share a
    teacher and data thus score the train split once."""
    import dataclasses

    from guard_sdk.training.augment_run import open_teacher
    from guard_sdk.training.recipe import pin_record

    teacher_spec = {k: v for k, v in dataclasses.asdict(distill.teacher).items() if k != "batch_size"}
    pin_record(Path(distill.score_cache), {"teacher": teacher_spec, "data": dataclasses.asdict(data)})
    return open_teacher(distill.teacher) if load else None


def distillation_train_set(distill: Any, teacher: Any, train: Any, progress: bool = True) -> Any:
    """The train split and the augmented rows, each scored by ``teacher`` (its score is the soft label; on
    augmented rows, score > 0.5 is also the hard label, so one teacher labels all they add), cached in
    ``distill.score_cache``."""
    import datasets

    cache = Path(distill.score_cache)
    parts = [with_teacher_scores(train, teacher, cache / "train", distill.teacher.batch_size, progress)]
    for folder in distill.augmented:
        scored = with_teacher_scores(augmented_rows(folder), teacher, cache / f"harmaug-{Path(folder).name}",
                                     distill.teacher.batch_size, progress)
        hard = [int(p > 0.5) for p in scored["soft"]]
        parts.append(scored.remove_columns("label").add_column("label", hard).cast(parts[0].features))
    return datasets.concatenate_datasets(parts)
