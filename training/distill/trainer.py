"""``DistillTrainer``: the Hugging Face Trainer with the distillation loss on each batch's soft labels."""

from __future__ import annotations

from typing import Any

from guard_sdk.training.distill.loss import distillation_loss


def distill_trainer_class(ce_weight: float, kl_weight: float, temperature: float, sampler: Any = None) -> type:
    """A ``transformers.Trainer`` whose loss is ``distillation_loss`` on the batch's ``soft`` column, drawing
    training rows from ``sampler`` (class-balanced) when one is given; everything else (mixed precision,
    gradient accumulation, checkpoints and resume, ``accelerate launch`` / ``torchrun``) is the Trainer's."""
    from transformers import Trainer

    from guard_sdk.training.trainer import sampled_trainer_class

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
