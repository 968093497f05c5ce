"""HarmAug's distillation loss: a hand computation, plain cross-entropy without soft labels, and a few
Trainer steps on a tiny model that bring the student toward the teacher."""

import math

import numpy as np
import pytest
import torch

from guard_sdk.training.distill import NO_SOFT_LABEL, distill_trainer_class, distillation_loss

from .conftest import SAFE_TEXTS, UNSAFE_TEXTS


def _softmax(z):
    e = np.exp(np.asarray(z, dtype=float) - max(z))
    return e / e.sum()


def test_loss_equals_a_hand_computation_on_fixed_logits():
    logits = [[2.0, -1.0], [0.5, 0.5], [-1.0, 3.0]]
    labels, soft = [0, 1, 1], [0.2, NO_SOFT_LABEL, 0.9]
    ce_w, kl_w, tau = 0.3, 0.7, 2.0
    expected = []
    for z, y, p in zip(logits, labels, soft):
        ce = -math.log(_softmax(z)[y])
        if math.isnan(p):
            expected.append(ce)
            continue
        teacher = _softmax([0.0, math.log(p / (1 - p)) / tau])  # the teacher's two classes, softened
        student = _softmax([v / tau for v in z])
        kl = sum(t * math.log(t / s) for t, s in zip(teacher, student)) * tau**2
        expected.append(ce_w * ce + kl_w * kl)
    got = distillation_loss(torch.tensor(logits), torch.tensor(labels), torch.tensor(soft), ce_w, kl_w, tau)
    assert got.item() == pytest.approx(np.mean(expected), rel=1e-6)


def test_without_soft_labels_the_loss_is_plain_cross_entropy():
    logits, labels = torch.randn(5, 2, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 1, 0, 1])
    soft = torch.full((5,), NO_SOFT_LABEL)
    plain = torch.nn.functional.cross_entropy(logits, labels)
    assert distillation_loss(logits, labels, soft).item() == pytest.approx(plain.item(), rel=1e-6)


def test_a_teacher_that_agrees_with_the_student_adds_nothing_at_any_temperature():
    logits = torch.tensor([[0.0, 1.2], [0.3, -0.4]])
    labels = torch.tensor([1, 0])
    soft = torch.softmax(logits, dim=-1)[:, 1]
    ce = torch.nn.functional.cross_entropy(logits, labels)
    for tau in (1.0, 3.0):
        assert distillation_loss(logits, labels, soft, 0.5, 0.5, tau).item() == pytest.approx(0.5 * ce.item(), abs=1e-6)


@pytest.mark.slow
def test_a_few_distillation_steps_bring_the_student_toward_the_teacher(tmp_path):
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        TrainingArguments,
    )

    from .conftest import build_tiny_checkpoint

    student = build_tiny_checkpoint(tmp_path / "student", "bert", probe=False)  # an untrained head
    tokenizer = AutoTokenizer.from_pretrained(student)
    # Without dropout: on a 32-wide random encoder it is noise that would hide what the loss does.
    model = AutoModelForSequenceClassification.from_pretrained(student, hidden_dropout_prob=0.0,
                                                               attention_probs_dropout_prob=0.0)
    texts = UNSAFE_TEXTS + SAFE_TEXTS
    labels = [1] * len(UNSAFE_TEXTS) + [0] * len(SAFE_TEXTS)
    soft = [0.7] * len(UNSAFE_TEXTS) + [0.2] * len(SAFE_TEXTS)  # a teacher less sure than the hard labels
    rows = Dataset.from_dict({**tokenizer(texts, truncation=True, max_length=64), "labels": labels, "soft": soft})

    def kl_to_teacher() -> float:
        with torch.no_grad():
            batch = tokenizer(texts, padding=True, return_tensors="pt")
            student = torch.log_softmax(model(**batch).logits, dim=-1)
        teacher = torch.tensor([[1 - p, p] for p in soft])
        return float((teacher * (teacher.log() - student)).sum(-1).mean())

    before = kl_to_teacher()
    args = TrainingArguments(output_dir=str(tmp_path / "run"), per_device_train_batch_size=8, learning_rate=1e-3,
                             max_steps=30, report_to=[], use_cpu=True, save_strategy="no", seed=0,
                             disable_tqdm=True)
    trainer_class = distill_trainer_class(ce_weight=0.0, kl_weight=1.0, temperature=1.0)
    trainer_class(model=model, args=args, train_dataset=rows, processing_class=tokenizer,
                  data_collator=DataCollatorWithPadding(tokenizer)).train()
    model.eval()
    after = kl_to_teacher()
    assert after < 0.1 * before, (before, after)
