"""The Trainer with guard-sdk's losses: the unsafe head's (cross-entropy, or HarmAug's distillation loss on each
batch's soft labels) plus, for a model with a category head, the categories' binary cross-entropy."""

from __future__ import annotations

from typing import Any

from guard_sdk.training.categories import KNOWN, TARGETS, CategoryLoss, category_loss
from guard_sdk.training.distill.loss import distillation_loss
from guard_sdk.training.recipe import DistillRecipe


def loss_trainer_class(sampler: Any = None, distill: DistillRecipe | None = None,
                       categories: CategoryLoss | None = None) -> type:
    """A ``transformers.Trainer`` whose loss is the unsafe head's on logits 0 and 1 (``distillation_loss`` on the
    batch's ``soft`` column where ``distill`` is given, else cross-entropy), plus ``categories``' weight x
    ``category_loss`` on logits 2.. where it is given, drawing training rows from ``sampler`` (class-balanced)
    when one is given. Everything else (mixed precision, gradient accumulation, checkpoints and resume,
    ``accelerate launch`` / ``torchrun``) is the Trainer's; with neither loss it is the Trainer itself."""
    from transformers import Trainer

    from guard_sdk.guard import LABEL_OUTPUTS
    from guard_sdk.training.trainer import sampled_trainer_class

    if distill is None and categories is None:
        return sampled_trainer_class(Trainer, sampler)
    columns = (["soft"] if distill is not None else []) + ([TARGETS, KNOWN] if categories is not None else [])

    class GuardTrainer(Trainer):
        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            import torch.nn.functional as F

            labels = inputs.pop("labels")
            extra = {name: inputs.pop(name) for name in columns}
            outputs = model(**inputs)
            unsafe = outputs.logits[:, :LABEL_OUTPUTS]
            loss = (F.cross_entropy(unsafe.float(), labels) if distill is None else
                    distillation_loss(unsafe, labels, extra["soft"], distill.ce_weight, distill.kl_weight,
                                      distill.temperature))
            if categories is not None:
                loss = loss + categories.weight * category_loss(outputs.logits[:, LABEL_OUTPUTS:], extra[TARGETS],
                                                                extra[KNOWN], categories.pos_weight)
            return (loss, outputs) if return_outputs else loss

        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()  # the model's forward arguments, kept from each row
            self._signature_columns += [c for c in columns if c not in self._signature_columns]

    return sampled_trainer_class(GuardTrainer, sampler)
