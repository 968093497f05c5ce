"""Knowledge distillation's loss as HarmAug trains its student: cross-entropy on the hard label mixed with
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
    and τ² keeps the KL term's gradients on the scale of τ = 1 (Hinton et al., 2015). Computed in float32
    whatever the logits' dtype, so that mixed precision neither rounds a confident p to 1 nor loses its KL.
    """
    import torch
    import torch.nn.functional as F

    logits = logits.float()
    ce = F.cross_entropy(logits, labels, reduction="none")
    has_soft = ~torch.isnan(soft)
    if not bool(has_soft.any()):
        return ce.mean()
    # A stand-in p for the rows without one, so that their KL (not selected below) and its gradient are finite.
    p = torch.where(has_soft, soft, 0.5).to(torch.promote_types(soft.dtype, torch.float32)).clamp(1e-6, 1 - 1e-6)
    teacher_logit = (torch.log(p) - torch.log1p(-p)).float()
    # In logs: a class whose probability underflows to 0 at a low temperature adds 0, not 0 · -inf.
    teacher = F.log_softmax(torch.stack([torch.zeros_like(teacher_logit), teacher_logit], dim=-1) / temperature, -1)
    student = F.log_softmax(logits / temperature, dim=-1)
    kl = (teacher.exp() * (teacher - student)).sum(dim=-1) * temperature**2
    return torch.where(has_soft, ce_weight * ce + kl_weight * kl, ce).mean()
