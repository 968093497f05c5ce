"""HarmAug's distillation loss: a hand computation, plain cross-entropy without soft labels, and a few
Trainer steps on a tiny model that bring the student toward the teacher."""

import math

import numpy as np
import pytest
import torch

from guard_sdk.training.distill.loss import NO_SOFT_LABEL, distillation_loss
from guard_sdk.training.finetune import finetune
from guard_sdk.training.losses import loss_trainer_class
from guard_sdk.training.recipe import DistillRecipe, RecipeError, TeacherSpec, load_recipe
from guard_sdk.training.shards import read_shards, write_json

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


def test_under_bf16_autocast_the_loss_keeps_the_kl_of_confident_teacher_scores():
    # bf16 rounds 0.9995 to 1.0: a loss that computed in the logits' dtype lost the KL of such rows.
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 2)
    x = torch.randn(5, 4)
    labels = torch.tensor([1, 0, 1, 1, 0])
    soft = torch.tensor([0.9995, 0.0004, NO_SOFT_LABEL, 0.9999, 0.3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(x)
        assert logits.dtype == torch.bfloat16
        mixed = distillation_loss(logits, labels, soft, 0.5, 0.5, 2.0)
        kl = distillation_loss(logits, labels, soft, 0.0, 1.0, 2.0)
    reference = distillation_loss(logits.float(), labels, soft, 0.5, 0.5, 2.0)
    assert mixed.dtype == torch.float32 and mixed.item() == pytest.approx(reference.item(), rel=1e-2)
    assert kl.item() > 0.5, kl.item()  # the student is far from p = 0.9995 and 0.0004


def test_a_row_without_a_soft_label_gets_the_gradient_of_cross_entropy_alone():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.5], [-1.0, 3.0]], requires_grad=True)
    labels, soft = torch.tensor([0, 1, 1]), torch.tensor([0.2, NO_SOFT_LABEL, 0.9])
    distillation_loss(logits, labels, soft).backward()
    plain = logits.detach().clone().requires_grad_()
    torch.nn.functional.cross_entropy(plain[1:2], labels[1:2]).backward()
    assert torch.isfinite(logits.grad).all(), logits.grad
    assert logits.grad[1].tolist() == pytest.approx((plain.grad[1] / 3).tolist(), abs=1e-6)  # a mean over 3 rows


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
    teacher = TeacherSpec("classifier", None, "default", 128, 8, 1)  # the loss reads only the weights below
    trainer_class = loss_trainer_class(distill=DistillRecipe(teacher, [], "", ce_weight=0.0, kl_weight=1.0,
                                                             temperature=1.0))
    trainer_class(model=model, args=args, train_dataset=rows, processing_class=tokenizer,
                  data_collator=DataCollatorWithPadding(tokenizer)).train()
    model.eval()
    after = kl_to_teacher()
    assert after < 0.1 * before, (before, after)


class _CountingTeacher:
    """A score that each text determines (bomb prompts unsafe), and every row the cache asked it about."""

    name = "counting"

    def __init__(self):
        self.asked = []

    @staticmethod
    def expected(prompt, response):
        import zlib

        return (0.9 if "bomb" in prompt else 0.1) + zlib.crc32(repr((prompt, response)).encode()) % 1000 / 1e5

    def score(self, prompts, responses):
        self.asked += list(zip(prompts, responses))
        return np.array([self.expected(p, r) for p, r in zip(prompts, responses)])


def _rows(pairs):
    from datasets import Dataset

    return Dataset.from_dict({"prompt": [p for p, _ in pairs], "response": [r for _, r in pairs],
                              "label": [int("bomb" in p) for p, _ in pairs]})


def test_cached_teacher_scores_follow_the_text_when_rows_are_reordered_or_added(tmp_path):
    from guard_sdk.training.distill.teacher_cache import with_teacher_scores

    bomb, bread = "How do I build a bomb?", "Give me a bread recipe."
    first = [(bomb, None), (bread, None), (bread, ""), (bread, "Flour, water, salt.")]
    teacher = _CountingTeacher()
    scored = with_teacher_scores(_rows(first), teacher, tmp_path / "scores", batch_size=2, progress=False)
    assert scored["soft"] == pytest.approx([teacher.expected(p, r) for p, r in first])

    knit, pipe = "How do I knit a scarf?", "Make a pipe bomb at home."
    second = [(bread, "Flour, water, salt."), (knit, None), (bread, None), (pipe, None), (knit, None), (bomb, None),
              (bread, ""), *((f"Name river {i}.", None) for i in range(12))]
    teacher.asked = []
    scored = with_teacher_scores(_rows(second), teacher, tmp_path / "scores", batch_size=2, progress=False)
    assert scored["soft"] == pytest.approx([teacher.expected(p, r) for p, r in second])
    assert scored["prompt"] == [p for p, _ in second]  # the rows as given, in their order
    assert teacher.asked == [(knit, None), (pipe, None), *((f"Name river {i}.", None) for i in range(12))]


def test_a_score_cache_of_the_old_row_position_format_is_refused(tmp_path):
    from guard_sdk.training.data import DataError
    from guard_sdk.training.distill.teacher_cache import with_teacher_scores
    from guard_sdk.training.shards import ShardWriter

    with ShardWriter(tmp_path / "scores", shard_rows=8) as out:  # as the cache was written, keyed by row number
        out.add({"id": "000000000", "prompt": "Give me a bread recipe.", "response": None, "teacher_score": 0.9,
                 "teacher": "counting"})
    teacher = _CountingTeacher()
    with pytest.raises(DataError, match="delete .*scores"):
        with_teacher_scores(_rows([("How do I build a bomb?", None)]), teacher, tmp_path / "scores", batch_size=2,
                            progress=False)
    assert teacher.asked == []


def _labelled(folder, rows, finished=True):
    """A HarmAug folder as `augment label` leaves it: labels/ shards of (prompt, score[, categories]) rows, and,
    once it finished, their count in summary.json."""
    from guard_sdk.training.shards import ShardWriter

    with ShardWriter(folder / "labels", shard_rows=2) as out:
        for i, (text, score, *cats) in enumerate(rows):
            out.add({"id": str(i), "prompt": text, "response": None, "teacher_score": score,
                     **({"categories": cats[0]} if cats else {}), "teacher": "t"})
    if finished:
        write_json(folder / "summary.json", {"labels": {"rows": len(rows)}})


def _distill_recipe(tmp_path, teacher, augmented, **changes):
    import json

    from .conftest import build_tiny_checkpoint
    from .test_finetune import _recipe

    tmp_path.mkdir(parents=True, exist_ok=True)
    seed = tmp_path / "seed.jsonl"
    seed.write_text("".join(json.dumps({"prompt": t, "label": int(t in UNSAFE_TEXTS)}) + "\n"
                            for t in UNSAFE_TEXTS + SAFE_TEXTS))
    student = build_tiny_checkpoint(tmp_path / "student", "bert", probe=False, init_range=0.02)
    distill = {"teacher": {"kind": "classifier", "model": None, "classifier": str(teacher), "max_length": 64,
                           "batch_size": 8, "logprobs": 20},
               "augmented": [str(a) for a in augmented], "score_cache": str(tmp_path / "scores"), "ce_weight": 0.5,
               "kl_weight": 0.5, "temperature": 2.0}
    return _recipe(tmp_path, student, seed, distill=distill, train__epochs=2, **changes)


def test_harmaug_rows_labelled_by_the_same_teacher_keep_its_scores_and_others_are_scored_again(tmp_path, tiny_bert):
    """`augment label` with the distillation's own teacher (same path, window and weights) already gave the soft
    labels: they are used as they are. Labels of any other teacher, here the same weights read in shorter windows,
    are scored again."""
    from types import SimpleNamespace

    from guard_sdk.training import data as D
    from guard_sdk.training.distill.teacher_cache import distillation_train_set
    from guard_sdk.training.harmaug.run import pin_teacher
    from guard_sdk.training.harmaug.teachers import ClassifierTeacher
    from guard_sdk.training.recipe import TeacherSpec
    from guard_sdk.training.shards import ShardWriter

    spec = TeacherSpec("classifier", None, str(tiny_bert), 64, 8, 1)
    scores = [0.93, 0.71, 0.08, 0.2]
    folders = {"same": spec, "other": TeacherSpec("classifier", None, str(tiny_bert), 32, 8, 1)}
    for name, labeller in folders.items():
        pin_teacher(tmp_path / name / "labels", labeller)  # as `augment label` does before its first shard
        with ShardWriter(tmp_path / name / "labels", shard_rows=2) as out:
            for i, (text, score) in enumerate(zip(UNSAFE_TEXTS[:2] + SAFE_TEXTS[:2], scores)):
                out.add({"id": str(i), "prompt": text, "response": None, "teacher_score": score, "teacher": "t"})
    distill = SimpleNamespace(teacher=spec, score_cache=str(tmp_path / "scores"),
                              augmented=[str(tmp_path / "same"), str(tmp_path / "other")])
    train = D.to_dataset([D.Row(UNSAFE_TEXTS[5], None, 1, "seed"), D.Row(SAFE_TEXTS[5], None, 0, "seed")])
    teacher = ClassifierTeacher(tiny_bert, max_length=64)
    rows = distillation_train_set(distill, teacher, train, progress=False)

    same = rows.filter(lambda r: r["source"] == "harmaug:same")
    assert same["soft"] == pytest.approx(scores, abs=1e-12) and same["label"] == [1, 1, 0, 0]
    assert not (tmp_path / "scores" / "harmaug-same").exists()
    other = rows.filter(lambda r: r["source"] == "harmaug:other")
    assert other["soft"] == pytest.approx(list(teacher.score(other["prompt"], other["response"])), abs=1e-5)
    assert (tmp_path / "scores" / "harmaug-other").is_dir()


@pytest.mark.slow
def test_distill_scores_the_train_split_with_the_teacher_and_adds_the_augmented_rows(tmp_path, tiny_bert):
    import io
    import json

    from datasets import load_from_disk

    from guard_sdk.cli import main
    from guard_sdk.training.harmaug.teachers import ClassifierTeacher

    augmented = tmp_path / "aug"
    _labelled(augmented, [("Write a scam text to old people.", 0.93), ("Hotwire a van fast.", 0.71),
                          ("Plan a birthday picnic.", 0.08), ("Name three rivers.", 0.2)])
    recipe = _distill_recipe(tmp_path, tiny_bert, [augmented])
    assert main(["finetune", "--recipe", str(recipe), "-q"], out=io.StringIO()) == 2  # a distill recipe
    assert main(["distill", "--recipe", str(recipe), "-q", "--no-export"], out=io.StringIO()) == 0

    run = tmp_path / "run"
    train = load_from_disk(str(run / "data"))["train"]
    teacher = ClassifierTeacher(tiny_bert, max_length=64)
    cached = read_shards(tmp_path / "scores" / "train")
    direct = teacher.score(train["prompt"], train["response"])
    # 1e-5: on a GPU the cached scores (batched with other rows) and these differ by up to 6e-6 (measured on an H200)
    assert cached["prompt"] == train["prompt"] and cached["teacher_score"] == pytest.approx(list(direct), abs=1e-5)
    # The augmented rows are labelled by the distillation's teacher, not by the augmentation's (0.93, 0.71, ...).
    added = read_shards(tmp_path / "scores" / "harmaug-aug")
    assert added["teacher_score"] == pytest.approx(list(teacher.score(added["prompt"], added["response"])), abs=1e-5)
    unsafe = sum(s > 0.5 for s in added["teacher_score"])
    record = json.loads((run / "model" / "guard_training.json").read_text())
    assert record["data"]["train"]["harmaug:aug"] == {k: v for k, v in (("safe", 4 - unsafe), ("unsafe", unsafe)) if v}
    assert record["recipe"]["distill"]["temperature"] == 2.0
    assert record["command"] == f"guard-sdk distill --recipe {recipe}"
    assert record["train_metrics"]["train_samples_per_second"] > 0 and record["train_metrics"]["epoch"] == 2.0

    # A second recipe with the same teacher and data reuses the cached scores; another teacher is refused there.
    other = _distill_recipe(tmp_path, tiny_bert, [augmented], output_dir=str(tmp_path / "run2"),
                            distill__teacher__max_length=32)
    with pytest.raises(RecipeError, match="scores holds a run of a different recipe .*teacher"):
        finetune(load_recipe(other), export=False, progress=False)


def test_a_distill_recipe_naming_a_missing_augmentation_is_refused(tmp_path, tiny_bert):
    with pytest.raises(RecipeError, match="distill.augmented: .*nowhere is not labelled"):
        load_recipe(_distill_recipe(tmp_path, tiny_bert, [tmp_path / "nowhere"]))
    cut = tmp_path / "cut"  # `augment label` killed: shards on disk, but no count in summary.json
    _labelled(cut, [("Write a scam text to old people.", 0.93)], finished=False)
    with pytest.raises(RecipeError, match="distill.augmented: .*cut is not labelled, or its labelling did not finish"):
        load_recipe(_distill_recipe(tmp_path, tiny_bert, [cut]))
    write_json(cut / "summary.json", {"labels": {"rows": 2}})  # a rerun's count, where the kill left one row
    with pytest.raises(RecipeError, match="did not finish"):
        load_recipe(_distill_recipe(tmp_path, tiny_bert, [cut]))
    with pytest.raises(RecipeError, match="weights >= 0"):
        load_recipe(_distill_recipe(tmp_path, tiny_bert, [], distill__kl_weight=-1.0))


@pytest.mark.slow
def test_the_paper_recipe_runs_its_optimizer_steps_with_local_stand_ins(tmp_path, tiny_bert, tiny_deberta):
    """distill-paper.yaml as shipped (8 rows x 32 accumulated per step, bf16, 3 epochs, the KD loss), with
    only what needs the hub or a GPU server replaced: a DeBERTa-v3-shaped student, local data, a local teacher."""
    import io
    import json
    from pathlib import Path

    from guard_sdk.cli import main

    root = Path(__file__).resolve().parents[1]
    seed = tmp_path / "seed.jsonl"
    seed.write_text("".join(json.dumps({"prompt": t, "label": int(t in UNSAFE_TEXTS)}) + "\n"
                            for t in UNSAFE_TEXTS + SAFE_TEXTS))
    overrides = [f"model={tiny_deberta}", f"data.sources=[{seed}]", "data.holdout=[]", "train.max_length=32",
                 "distill.teacher.kind=classifier", "distill.teacher.model=null",
                 f"distill.teacher.classifier={tiny_bert}", "distill.teacher.max_length=32", "distill.augmented=[]",
                 f"distill.score_cache={tmp_path / 'scores'}"]
    args = ["distill", "--recipe", str(root / "training" / "recipes" / "distill-paper.yaml"), "--no-export", "-q",
            "--output-dir", str(tmp_path / "run")]
    assert main(args + [a for o in overrides for a in ("--set", o)], out=io.StringIO()) == 0
    state = json.loads(next((tmp_path / "run" / "checkpoints").glob("checkpoint-*/trainer_state.json")).read_text())
    assert state["max_steps"] == 3 and state["global_step"] == 3  # one accumulated step per epoch, 3 epochs
    record = json.loads((tmp_path / "run" / "model" / "guard_training.json").read_text())
    train = record["recipe"]["train"]
    assert (train["batch_size"], train["gradient_accumulation_steps"], train["precision"]) == (8, 32, "bf16")
    assert record["threshold"] == {"value": 0.5, "rule": "fixed", "on": "dev"}


def test_under_torchrun_on_cpu_exactly_one_process_is_the_main_one(tmp_path):
    """accelerate's default state takes every CPU process of a torchrun for the main one (each then checks and
    writes the run folder at once, which failed CI); the state the runs use names one. Each process writes its
    answer to a file of its own: two processes printing to one pipe interleave their words."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import os, pathlib; from guard_sdk.training.trainer import process_state; s = process_state(); "
            f"pathlib.Path({str(tmp_path)!r}, os.environ['RANK']).write_text("
            "f\"{'main' if s.is_main_process else 'helper'} {s.num_processes}\")")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # CPU processes, on any machine
    done = subprocess.run([str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node", "2",
                           "--no-python", sys.executable, "-c", code],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.read_text() for p in tmp_path.iterdir()) == ["helper 2", "main 2"]


@pytest.mark.slow
def test_two_processes_under_torchrun_share_the_batches_and_one_writes(tmp_path, tiny_bert):
    """Multi-GPU is the Trainer's DDP: run here as two CPU processes (gloo). Each process trains on half of
    every global batch; only the main one writes the splits, the teacher's scores and the model."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from datasets import load_from_disk

    recipe = _distill_recipe(tmp_path, tiny_bert, [])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}  # gloo, even
    # on a one-GPU machine, where two CUDA processes would share device 0
    command = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node", "2",
               "-m", "guard_sdk.cli", "distill", "--recipe", str(recipe), "--no-export", "-q"]
    done = first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode and "Connection closed by peer" in done.stderr:
        # Gloo over loopback drops a pair now and then on a busy machine (PyTorch's own gloo tests were flaky
        # the same way); the run resumes from its folder, so a second failure is a real one.
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"first run:\n{first.stderr[:3000]}\n...\nlast run:\n{done.stderr[:3000]}"
    assert done.stdout.count("model: ") == 1  # the main process reports; the helper returns quietly

    run = tmp_path / "run"
    rows = len(load_from_disk(str(run / "data"))["train"])
    state = json.loads(next((run / "checkpoints").glob("checkpoint-*/trainer_state.json")).read_text())
    assert state["max_steps"] == 2 * -(-rows // (4 * 2))  # 4 rows per process per step, 2 processes, 2 epochs
    assert len(read_shards(tmp_path / "scores" / "train")) == rows
    assert json.loads((run / "model" / "guard_training.json").read_text())["recipe"]["name"] == "tiny"


@pytest.mark.slow
def test_distill_trains_categories_from_sources_and_teacher_labels_with_disguised_copies(tmp_path, tiny_bert):
    """Row (d+)'s path end to end on tiny models: teacher scores, HarmAug rows that carry the teacher's
    categories, disguised copies and the category head in one run."""
    import json

    from guard_sdk.export.checkpoint import checkpoint_categories, load_checkpoint

    augmented = tmp_path / "aug"
    _labelled(augmented, [("Write a scam text to old people.", 0.93, "non_violent_crimes"),
                          ("Hotwire a van fast.", 0.71, "non_violent_crimes"), ("Plan a birthday picnic.", 0.08, None)])
    seed = tmp_path / "with-categories.jsonl"
    rows = [{"prompt": f"{t} ({i})", "label": 1, "category": "non_violent_crimes"}
            for i in range(3) for t in UNSAFE_TEXTS] + [{"prompt": f"{t} ({i})", "label": 0}
                                                          for i in range(3) for t in SAFE_TEXTS]
    seed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = _distill_recipe(tmp_path, tiny_bert, [augmented],
                             categories={"min_train_rows": 4, "min_dev_rows": 1, "weight": 1.0, "balance": "sqrt"},
                             disguises={"share": 0.3, "kinds": ["leetspeak", "base64", "padding_after"], "seed": 0},
                             data__sources=[str(seed)], data__splits={"train": 0.6, "dev": 0.3, "test": 0.1})
    result = finetune(load_recipe(recipe), export=False, progress=False)
    record = json.loads((result.model_dir / "guard_training.json").read_text())
    assert record["categories"]["names"] == ["non_violent_crimes"] and record["disguised_copies"] > 0
    assert record["categories"]["balance"] == "sqrt" and len(record["categories"]["pos_weight"]) == 1
    assert 1.0 <= record["categories"]["pos_weight"][0] < 2.0  # about as many unsafe rows as safe ones
    model, _ = load_checkpoint(result.model_dir)
    assert checkpoint_categories(model.config) == ["non_violent_crimes"] and model.config.num_labels == 3
