"""Knowledge distillation as HarmAug trains its student: cross-entropy on the hard label mixed with
KL(teacher ‖ student) on the teacher's P(unsafe), 0.5 each as in the paper's released code.

A row without a teacher score (a human-labelled seed row that was never scored) has NaN as its soft label
and contributes cross-entropy alone, so a batch with no soft labels is plain cross-entropy.
"""

from __future__ import annotations

from typing import Any

NO_SOFT_LABEL = float("nan")


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
