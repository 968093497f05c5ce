"""The ``guard-sdk`` command. Heavy subcommands import their packages only when they run."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from guard_sdk import __version__
from guard_sdk.errors import (
    BackendUnavailableError,
    BundleError,
    ExportError,
    InputError,
    InputTypeError,
    ParityError,
)

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
JSONL_CHUNK = 64

EPILOG = """exit codes: 0 success; 2 bad input (arguments, texts, a bundle that fails its checks);
1 failure (an export that misses parity, a missing library, anything unexpected).
Set GUARD_SDK_DEBUG=1 to see the traceback of an unexpected error."""


def _probability(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {value}")
    return number


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
    return int(value)


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _mapping(value: str) -> dict[str, str]:
    pairs = [part.split("=", 1) for part in _csv(value)]
    if not pairs or any(len(p) != 2 or not p[0] or not p[1] for p in pairs):
        raise argparse.ArgumentTypeError(f"expected NAME=COLUMN,..., got {value!r}")
    return {k.strip(): v.strip() for k, v in pairs}


def _positive_ints(value: str) -> tuple[int, ...]:
    counts = tuple(_positive_int(part) for part in _csv(value))
    if not counts:
        raise argparse.ArgumentTypeError("name at least one positive whole number")
    return counts


def _add_runtime_options(p: argparse.ArgumentParser, threads: bool = True) -> None:
    p.add_argument("--bundle", "-b", type=Path, default=None,
                   help="guard bundle folder (default: the embedded default guard)")
    p.add_argument("--backend", default="auto",
                   help="onnxruntime, executorch, coreml (macOS), or auto: the fastest here that the bundle has "
                   "an artifact for (default: auto)")
    p.add_argument("--precision", default="auto",
                   help="fp32, fp16, int8, int4, palette4, or auto: int8, then fp16, then fp32 (default: auto)")
    if threads:
        p.add_argument("--threads", type=_positive_int, default=None, help="intra-op threads (default: the backend's)")


def _add_set_option(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help=f"change one recipe field for this run, e.g. --set {example} (repeatable; the value is "
                   "YAML; the output folder records the recipe as run)")


def _add_training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", type=Path, required=True, help="recipe YAML file")
    p.add_argument("--output-dir", help="where checkpoints, splits and reports go (default: the recipe's)")
    p.add_argument("--data-dir", help="the shared data folder (default: the recipe's, $GUARD_DATA_DIR, ../shared/data)")
    _add_set_option(p, "train.max_length=256")
    p.add_argument("--no-export", action="store_true", help="stop after training and dev calibration")
    p.add_argument("--quiet", "-q", action="store_true", help="print only errors")


def _add_augment_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", type=Path, required=True, help="augmentation recipe YAML file")
    p.add_argument("--output-dir", help="where the stage folders go (default: the recipe's output_dir)")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the summary and errors")


def _command(sub: Any, name: str, help: str, description: str, examples: str = "") -> argparse.ArgumentParser:
    """A subcommand whose --help ends with the exit codes and, where given, examples."""
    epilog = EPILOG + (f"\n\nexamples:\n{examples}" if examples else "")
    return sub.add_parser(name, help=help, description=description, epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guard-sdk",
        description="Small, fast LLM safety guards: export a classifier to a guard bundle and classify "
        "prompts, or prompt+response pairs, on the device.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"guard-sdk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    c = _command(
        sub, "classify",
        help="classify a prompt (or prompt + response) with a guard bundle",
        description="Print one JSON verdict per input: unsafe (bool), score (P(unsafe)), threshold, label, "
        "windows (how many max_length windows were scored). Either TEXT or --jsonl.",
        examples="  guard-sdk classify 'How do I make a pipe bomb?' --bundle my-guard\n"
        "  guard-sdk classify 'Tell me a joke' --response 'Why did the ...' --bundle my-guard\n"
        "  guard-sdk classify --jsonl inputs.jsonl --bundle my-guard > verdicts.jsonl",
    )
    c.add_argument("text", nargs="?", help="the user prompt to classify")
    c.add_argument("--response", "-r", help="the assistant's response to TEXT; the verdict is then on the response")
    c.add_argument("--jsonl", type=Path, metavar="FILE",
                   help='one {"prompt": ..., "response": ...} object per line ("-" reads stdin); one verdict '
                   'per line out, in order, with its line number; a bad line gets {"line": N, "error": ...} '
                   "and the rest still run")
    c.add_argument("--threshold", "-t", type=_probability, default=None,
                   help="decision cut on P(unsafe) (default: the bundle's)")
    _add_runtime_options(c)

    e = _command(
        sub, "export",
        help="export a Hugging Face sequence-classification checkpoint to a guard bundle",
        description="Export CHECKPOINT (a local folder or a hub id) to a guard bundle folder. Every artifact is "
        "scored against the PyTorch model on fixed texts first; if one misses its tolerance the export "
        "fails and writes nothing. Core ML predicts only on macOS: exported elsewhere, its artifacts are checked "
        "by their spec and guard.json says parity was not measured. Formats and bounds: docs/export.md. "
        "Needs: pip install 'guard-sdk[export]'.",
        examples="  guard-sdk export ckpt -o my-guard                         # ONNX fp32 + int8\n"
        "  guard-sdk export ckpt -o my-guard --formats onnx,executorch,coreml  # + .pte, .mlpackage\n"
        "  guard-sdk export ckpt -o phone --formats executorch --precision int8,int4",
    )
    e.add_argument("checkpoint", help="folder with config.json, weights and tokenizer.json, or a hub id")
    e.add_argument("--output", "-o", type=Path, required=True, help="bundle folder to write (must not exist)")
    e.add_argument("--formats", type=_csv, default=("onnx",),
                   help="comma-separated: onnx, executorch (.pte, XNNPACK), coreml (.mlpackage) (default: onnx)")
    e.add_argument("--precision", type=_csv, default=None, dest="precisions",
                   help="comma-separated; each format writes those it has: onnx fp32,int8; executorch "
                   "fp32,int8,int4 (4-bit weights); coreml fp16,int8,palette4 (4-bit palettized weights). "
                   "Default: onnx and executorch fp32,int8; coreml fp16,int8")
    e.add_argument("--name", help="bundle name in guard.json (default: the output folder's name)")
    e.add_argument("--max-length", type=_positive_int, help="tokens per window (default: the checkpoint's limit)")
    e.add_argument("--threshold", type=_probability, default=None,
                   help="decision cut on P(unsafe) (default: the one `guard-sdk finetune` calibrated, else 0.5)")
    e.add_argument("--prompt-truncation-side", choices=("left", "right"), default="left",
                   help="for a pair over max_length, which end of the prompt is cut (default: left, keeping "
                   "the words nearest the response)")
    e.add_argument("--window-overlap", type=int, help="tokens shared by consecutive windows (default: max_length // 8)")
    e.add_argument("--fp32-tolerance", type=float, default=1e-4, help="max |ΔP(unsafe)| for fp32 (default: 1e-4)")
    e.add_argument("--fp32-min-agreement", type=_probability, default=1.0,
                   help="least share of same decisions for fp32 (default: 1.0)")
    e.add_argument("--int8-tolerance", type=float, default=0.05, help="max |ΔP(unsafe)| for int8 (default: 0.05)")
    e.add_argument("--int8-min-agreement", type=_probability, default=0.98,
                   help="least share of same decisions for int8 (default: 0.98)")
    e.add_argument("--int8-per-channel", choices=("auto", "on", "off"), default="auto",
                   help="ONNX: per-channel weight scales; auto uses them unless they miss parity (default: auto)")
    e.add_argument("--fp16-tolerance", type=float, default=0.01, help="max |ΔP(unsafe)| for fp16 (default: 0.01)")
    e.add_argument("--fp16-min-agreement", type=_probability, default=0.99,
                   help="least share of same decisions for fp16 (default: 0.99)")
    e.add_argument("--int4-tolerance", type=float, default=0.25,
                   help="max |ΔP(unsafe)| for int4 and palette4 (default: 0.25)")
    e.add_argument("--int4-min-agreement", type=_probability, default=0.95,
                   help="least share of same decisions for int4 and palette4 (default: 0.95)")
    e.add_argument("--no-quantize-embeddings", dest="quantize_embeddings", action="store_false",
                   help="ExecuTorch int8/int4: keep the embedding table in fp32 (default: int8 rows)")
    e.add_argument("--opset", type=_positive_int, help="ONNX opset (default: optimum's for the architecture)")
    e.add_argument("--threads", type=_positive_int, help="threads for the parity runs (default: all)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --output")
    e.add_argument("--quiet", "-q", action="store_true", help="print only errors")

    r = _command(
        sub, "random-checkpoint",
        help="write a random-weight checkpoint of a real model shape, to export or benchmark offline",
        description="Write a sequence-classification checkpoint with the published config of SHAPE and random "
        "weights (size and speed do not depend on the weights), with a small Unigram tokenizer. Needs: pip "
        "install 'guard-sdk[export]'.",
        examples="  guard-sdk random-checkpoint deberta-v3-large -o build/deberta-v3-large-random\n"
        "  guard-sdk export build/deberta-v3-large-random -o build/student-shape --formats onnx,executorch,coreml",
    )
    r.add_argument("shape", choices=("deberta-v3-large", "deberta-v3-base"),
                   help="deberta-v3-large is the HarmAug paper's 435M student")
    r.add_argument("--output", "-o", type=Path, required=True, help="checkpoint folder to write (must not exist)")
    r.add_argument("--seed", type=int, default=0, help="random seed of the weights (default: 0)")

    v = _command(
        sub, "verify",
        help="check a bundle: manifest schema, every file's size and sha256",
        description="Check guard.json against the schema and every file it lists against its recorded size and "
        "sha256; print a summary of the artifacts.",
    )
    v.add_argument("bundle", type=Path, help="bundle folder")

    f = _command(
        sub, "finetune",
        help="fine-tune a student guard on labelled seed data from a recipe",
        description="Run a training recipe (a YAML file that names every knob; see training/recipes/): build "
        "train/dev/test splits by seed with no near-duplicate across them, fine-tune with the Hugging Face "
        "Trainer on class-balanced batches, calibrate the threshold on dev, and (if the recipe has an export "
        "section) export a guard bundle and evaluate it. A killed run resumes from its last checkpoint when "
        "run again. Needs: pip install 'guard-sdk[train,export]'.",
        examples="  guard-sdk finetune --recipe training/recipes/default-guard.yaml",
    )
    _add_training_options(f)

    di = _command(
        sub, "distill",
        help="distil a teacher into a student guard: seed data plus HarmAug rows, hard and soft labels",
        description="Run a training recipe with a distill section: the teacher scores the train split and the "
        "rows of HarmAug runs (cached in distill.score_cache, resumable, shared by recipes with the same teacher "
        "and data); a HarmAug row's hard label is the teacher's score > 0.5. The student learns with ce_weight x "
        "cross-entropy on the hard label + kl_weight x KL(teacher || student) on the teacher's P(unsafe) at the "
        "recipe's temperature. Splits, class-balanced batches, calibration, export "
        "and resuming are as in finetune. Needs: pip install 'guard-sdk[train,export]'.",
        examples="  guard-sdk distill --recipe training/recipes/NAME.yaml",
    )
    _add_training_options(di)

    ab = _command(
        sub, "ablation",
        help="HarmAug's ablation: train the rows of an ablation file that are missing, score all, write the table",
        description="Run an ablation file (training/recipes/ablation-offline.yaml): each row is a training recipe "
        "(plain fine-tuning or distillation). Rows without a finished model are trained, plain ones first (a "
        "distillation's teacher is one), without export; every model is scored in PyTorch on the same dev, test "
        "and holdout rows at its own dev-calibrated threshold; a markdown table with F1, AUPRC, holdout "
        "false-positive rates and the rows each model saw is written to the file's `table`, with the verdict on "
        "shipping the candidate row. A killed run resumes. Prints the figures as JSON. "
        "Needs: pip install 'guard-sdk[train,export]'.",
        examples="  guard-sdk ablation --recipe training/recipes/ablation-offline.yaml",
    )
    ab.add_argument("--recipe", type=Path, required=True, help="ablation YAML file")
    ab.add_argument("--data-dir",
                    help="the shared data folder (default: the recipes', $GUARD_DATA_DIR, ../shared/data)")
    ab.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    ad = _command(
        sub, "adapt",
        help="teach a guard a new rule from a few examples (DAPT): nearest known rows + prompt tuning or LoRA",
        description="Few-shot adaptation as in DAPT (Balashankar et al., 2023). The examples (labelled rows of the "
        "new rule: 1 unsafe, 0 safe) and the pool (labelled rows of the rules the guard already knows) are embedded "
        "with a sentence encoder (the packaged all-MiniLM-L6-v2 by default); each example brings its k nearest "
        "pool rows above a similarity cut, labelled as the recipe says; then peft trains prompt tuning or LoRA on "
        "examples + neighbours with the base weights frozen (or, with --method full, every weight). OUT/model is a "
        "plain checkpoint (LoRA merged, prompt tuning's virtual tokens baked into the vocabulary) that `guard-sdk "
        "export` turns into a bundle. Duplicate examples are used once; examples found in the pool leave the pool; "
        "fewer examples than --shots are all used, with a warning; an empty pool is refused. The recipe (default: "
        "the shipped adapt.yaml) names k, the cut, the labelling and every training knob. "
        "Needs: pip install 'guard-sdk[train,export]'.",
        examples="  guard-sdk adapt --base build/finetune/default-guard/model --examples few.jsonl \\\n"
        "      --pool build/finetune/default-guard/data --pool-split train -o build/adapt/my-rule\n"
        "  guard-sdk export build/adapt/my-rule/model -o my-guard",
    )
    ad.add_argument("--base", required=True, help="the guard checkpoint to adapt (a folder or hub id)")
    ad.add_argument("--examples", required=True,
                    help="labelled examples of the new rule: a data file (.jsonl .json .csv .parquet) or dataset")
    ad.add_argument("--pool", type=_csv, default=None,
                    help="comma-separated labelled rows of the known rules (as for eval: built-in sources, files, "
                    "saved datasets, hub ids); needed unless neighbours.k is 0")
    ad.add_argument("--pool-split", help="split of a saved DatasetDict or hub dataset in --pool (e.g. train)")
    ad.add_argument("--columns", type=_mapping, default=None,
                    help="your column names in --examples: prompt=NAME,response=NAME,label=NAME")
    ad.add_argument("--method", choices=("prompt-tuning", "lora", "full"),
                    help="what trains (default: the recipe's, prompt-tuning)")
    ad.add_argument("--shots", type=_positive_int, help="use this many examples, drawn by the recipe's seed "
                    "(default: all)")
    ad.add_argument("--recipe", type=Path, help="adapt recipe YAML (default: the shipped adapt.yaml)")
    _add_set_option(ad, "neighbours.k=16")
    ad.add_argument("--data-dir", help="the shared data folder for built-in sources (default: $GUARD_DATA_DIR, "
                    "../shared/data)")
    ad.add_argument("--output", "-o", type=Path, required=True, help="output folder; OUT/model is the checkpoint")
    ad.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    dx = _command(
        sub, "dapt-experiment",
        help="test DAPT's claim on our data: HarmBench categories as new rules, four ways to adapt, a table",
        description="Run a DAPT experiment file (training/recipes/dapt-harmbench.yaml). Each HarmBench semantic "
        "category it names is in turn the new rule: a base guard is trained without it, then gets k of its rows "
        "(and k safe rows) per seed and adapts by (a) full fine-tuning on the examples, (b) PEFT on the examples, "
        "(c) neighbours + full fine-tuning, (d) DAPT: neighbours + PEFT. F1 and AUPRC on the rule's held-out rows "
        "and on the known rules (forgetting), mean and spread over seeds, go to the file's `table`. Each run's "
        "figures are kept under its output_dir, so a killed run resumes. Needs: pip install 'guard-sdk[train]'.",
        examples="  guard-sdk dapt-experiment --recipe training/recipes/dapt-harmbench.yaml\n"
        "  guard-sdk dapt-experiment --recipe training/recipes/dapt-harmbench.yaml --set 'rules=[illegal]'",
    )
    dx.add_argument("--recipe", type=Path, required=True, help="experiment YAML file")
    _add_set_option(dx, "'seeds=[0]'")
    dx.add_argument("--data-dir",
                    help="the shared data folder (default: the recipe's, $GUARD_DATA_DIR, ../shared/data)")
    dx.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    a = _command(
        sub, "augment",
        help="HarmAug: generate harmful instructions, then two answers to each, from a recipe",
        description="Run one stage of a HarmAug augmentation recipe (a YAML file; see training/recipes/). "
        "instructions: an LLM is shown k harmful seed prompts and asked for one more, its answer prefilled with "
        "an affirmative prefix; what it writes is parsed, length-filtered and deduplicated (also against the "
        "seed data). responses: each kept instruction is answered twice, once prefilled to comply and once "
        "plainly. Rows go to Parquet shards under the recipe's output_dir as they complete; a killed run, run "
        "again, does only what is missing. Prints the stage's summary as JSON (also kept in summary.json). "
        "Models run locally (transformers, GGUF files included, CPU or CUDA) or on an OpenAI-compatible server "
        "(vLLM, SGLang, TGI, llama.cpp). Needs: pip install 'guard-sdk[train]'.",
        examples="  guard-sdk augment instructions --recipe training/recipes/augment-offline.yaml\n"
        "  guard-sdk augment responses --recipe training/recipes/augment-offline.yaml\n"
        "  guard-sdk label --recipe training/recipes/augment-offline.yaml",
    )
    a.add_argument("stage", choices=("instructions", "responses"), help="which stage to run")
    _add_augment_options(a)
    a.add_argument("--count", type=_positive_int,
                   help="instructions: generation requests (default: the recipe's instructions.count); a larger "
                   "count on a finished folder asks only the new ones")
    a.add_argument("--data-dir", help="the shared data folder (default: the recipe's, $GUARD_DATA_DIR, ../shared/data)")

    lb = _command(
        sub, "label",
        help="label augmented rows with the recipe's teacher: P(unsafe) per row",
        description="Score every kept instruction (as a prompt) and every response of an augmentation run with "
        "the recipe's teacher: a Llama-Guard-style causal LM (the Llama Guard 3 task; the softmax over the "
        "'safe'/'unsafe' first-token logits), locally or over an OpenAI-compatible server with logprobs, or a "
        "sequence classifier (a guard bundle, a checkpoint, or `default`, the embedded guard). Each row keeps the "
        "soft score and the teacher's name; resumable like `augment`. Needs: pip install 'guard-sdk[train]'.",
        examples="  guard-sdk label --recipe training/recipes/augment-offline.yaml",
    )
    _add_augment_options(lb)

    ev = _command(
        sub, "eval",
        help="precision, recall, F1, AUPRC and FPR of a guard on labelled data",
        description="Score labelled data with a guard bundle (through the runtime) or a PyTorch checkpoint and "
        "print precision, recall, F1, AUPRC and false-positive rate at the threshold, overall, per level "
        "(prompt / response) and per source, as a markdown table; --out also writes them as JSON. "
        "Needs: pip install 'guard-sdk[train]'.",
        examples="  guard-sdk eval --data xstest                       # the default guard\n"
        "  guard-sdk eval --bundle my-guard --data build/finetune/default-guard/data --split test\n"
        "  guard-sdk eval --checkpoint ckpt --data mine.csv --columns prompt=text,label=is_harmful",
    )
    ev.add_argument("--data", "-d", type=_csv, required=True,
                    help="comma-separated: built-in source names (e.g. xstest), data files (.jsonl .json .csv "
                    ".parquet), saved dataset folders, or hub ids")
    ev.add_argument("--checkpoint", help="score a PyTorch checkpoint instead of a bundle")
    ev.add_argument("--max-length", type=_positive_int, default=512,
                    help="with --checkpoint: tokens per window, as a bundle of that max_length scores (default: 512)")
    ev.add_argument("--split", help="split of a saved DatasetDict or a hub dataset (e.g. dev, test)")
    ev.add_argument("--columns", type=_mapping, default=None,
                    help="your column names for data files: prompt=NAME,response=NAME,label=NAME,category=NAME")
    ev.add_argument("--data-dir", help="the shared data folder for built-in sources (default: $GUARD_DATA_DIR, "
                    "../shared/data)")
    ev.add_argument("--threshold", "-t", type=_probability, default=None,
                    help="decision cut (default: the bundle's; 0.5 for a checkpoint)")
    ev.add_argument("--out", "-o", type=Path, help="also write eval.json and eval.md to this folder")
    _add_runtime_options(ev)

    b = _command(
        sub, "bench",
        help="latency, memory, load time and size of a bundle's artifacts, each configuration in its own process",
        description="For every artifact of the bundle(s) that a chosen backend runs here, at each thread count "
        "and input length (tokens across the input's windows): cold load time, first call, then p50/p90/p99 and "
        "trimmed-mean latency of RUNS classify calls after WARMUP, inputs per second, peak resident memory and "
        "file size. Each configuration runs in a fresh process, so one's memory and thread pools never touch the "
        "next's. Prints a markdown table with the machine (CPU, cores, instruction-set flags, library versions); "
        "--out also writes results.json, RESULTS.md and latency.png.",
        examples="  guard-sdk bench                                  # the embedded default guard\n"
        "  guard-sdk bench -b build/student-shape --backends onnxruntime --tokens 128 --threads 1,2 --out bench/",
    )
    b.add_argument("--bundle", "-b", type=Path, action="append", default=None,
                   help="guard bundle folder; repeat for several (default: the embedded default guard)")
    b.add_argument("--backends", type=_csv, default=None, help="comma-separated backends (default: all that run here)")
    b.add_argument("--precisions", type=_csv, default=None,
                   help="comma-separated precisions (default: every artifact of the bundle)")
    b.add_argument("--tokens", type=_positive_ints, default=(16, 64, 128, 256, 512),
                   help="comma-separated input lengths in tokens (default: 16,64,128,256,512)")
    b.add_argument("--threads", type=_positive_ints, default=(1, 2),
                   help="comma-separated thread counts (default: 1,2)")
    b.add_argument("--batch", type=_positive_int, default=1, help="inputs per classify_batch call (default: 1)")
    b.add_argument("--runs", type=_positive_int, default=100, help="timed calls per configuration (default: 100)")
    b.add_argument("--warmup", type=_positive_int, default=10, help="untimed calls after the first (default: 10)")
    b.add_argument("--references", action="store_true",
                   help="also time transformers' pipeline (PyTorch) and optimum's ORTModel pipeline on the bundle's "
                   "source checkpoint, at the lengths that fit one window, and print our speed-up over each; "
                   "needs guard-sdk[export]")
    b.add_argument("--checkpoint", type=Path, help="with --references: the checkpoint (default: the bundle's source)")
    b.add_argument("--data", type=_csv, default=None,
                   help="labelled rows (as for eval) on which each artifact's F1 and distance from fp32 are measured; "
                   "needs guard-sdk[train]")
    b.add_argument("--split", help="with --data: the split of a saved dataset or hub dataset (e.g. dev)")
    b.add_argument("--quality-rows", type=_positive_int, default=1000,
                   help="with --data: the first N rows (default: 1000)")
    b.add_argument("--out", "-o", type=Path,
                   help="also write results.json, RESULTS.md, latency.png (and with --data size_f1.png) here")
    b.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    an = _command(
        sub, "android",
        help="the Android demo's side of a bundle: test vectors, the app's assets, the app's benchmark report",
        description="Tasks for android_demo/ (its README says how to build and run the app): write the shared "
        "test vectors its JVM tests match, copy a bundle into the app's assets, or turn the JSON the app's "
        "benchmark screen wrote into bench's report format.",
        examples="  make android-assets                              # the default guard's .pte, into the app\n"
        "  guard-sdk android assets -b my-guard             # any bundle with model.int8.pte\n"
        "  guard-sdk android vectors -o build/android-vectors/default.json\n"
        "  guard-sdk android report pulled/ --out benchmarks/android/",
    )
    asub = an.add_subparsers(dest="android_command", metavar="TASK", required=True)
    v = _command(asub, "vectors", help="write test vectors: texts, token ids, windows, masks, logits, verdicts",
                 description="Run fixed texts (ASCII, accents, CJK, emoji, empty, over max_length, controls, "
                 "prompt+response pairs) through the Python runtime and write, for each, its token ids, windows "
                 "(ids, types, attention mask), the padded batch, each window's logits from the bundle's artifact, "
                 "P(unsafe) per window and the verdict. The JVM module's tests must match ids and masks exactly.")
    _add_runtime_options(v, threads=False)
    v.add_argument("--output", "-o", type=Path, required=True, help="JSON file to write")
    a = _command(asub, "assets", help="copy a bundle's guard.json, tokenizer.json and .pte into the app's assets",
                 description="Check guard.json, tokenizer.json and the ExecuTorch artifact against their sha256, "
                 "then copy them into the app's assets folder, replacing what was there.")
    a.add_argument("--bundle", "-b", type=Path, default=None,
                   help="guard bundle folder with an ExecuTorch artifact (default: the embedded default guard, "
                   "which is ONNX only: make android-assets exports its .pte)")
    a.add_argument("--precision", default="int8", help="which ExecuTorch artifact: fp32, int8, int4 (default: int8)")
    a.add_argument("--assets", type=Path, default=None,
                   help="assets folder (default: android_demo/app/src/main/assets/guard of this checkout)")
    r = _command(asub, "report", help="the app's benchmark JSON as bench's results.json and RESULTS.md",
                 description="Read benchmark_results.json (ExecuTorch benchmark-app fields) and guard_run.json "
                 "(the timed calls) that the app's benchmark screen wrote and benchmarks/android_bench.sh pulled, "
                 "and print or write them in the same report format as guard-sdk bench.")
    r.add_argument("pulled", type=Path, help="folder holding the two JSON files pulled from the phone")
    r.add_argument("--out", "-o", type=Path, help="also write results.json and RESULTS.md here")
    return parser


# What other libraries log on import that tells a guard-sdk user nothing: torchao's CUDA kernels, which a
# CPU machine cannot load, and a torch deprecation that torchao's import triggers.
QUIET_LOGGERS = ("torchao", "torch.utils._pytree")


def show_progress(verbose: bool = True) -> None:
    """Print guard-sdk's own progress lines (not every library's) to stderr."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("  %(message)s"))
    logger = logging.getLogger("guard_sdk")
    logger.handlers[:] = [handler]
    logger.propagate = False  # a library may have configured the root logger; print each line once
    logger.setLevel(logging.INFO if verbose else logging.WARNING)


def _emit(out: IO[str], record: dict[str, Any]) -> None:
    out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()


def _jsonl_records(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, parsed record or an error message) for each non-blank line; bytes are decoded per line."""
    from guard_sdk.guard import MAX_INPUT_CHARS, check_text

    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield number, f"not valid UTF-8 (byte {e.start})"
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            yield number, f"not valid JSON ({e.msg})"
            continue
        if not isinstance(record, dict) or "prompt" not in record:
            yield number, 'expected an object with a "prompt" (and optionally a "response")'
            continue
        try:
            check_text(record["prompt"], "prompt", MAX_INPUT_CHARS)
            if record.get("response") is not None:
                check_text(record["response"], "response", MAX_INPUT_CHARS)
        except (InputError, InputTypeError) as e:
            yield number, str(e)
            continue
        yield number, record


def _classify_jsonl(guard: Any, source: Path, threshold: float | None, out: IO[str]) -> int:
    from tqdm import tqdm

    bad = 0
    stream = sys.stdin.buffer if str(source) == "-" else open(source, "rb")
    try:
        pending: list[tuple[int, dict[str, Any]]] = []
        progress = tqdm(unit=" lines", file=sys.stderr, disable=None)

        def flush() -> None:
            verdicts = guard.classify_batch([r["prompt"] for _, r in pending],
                                            [r.get("response") for _, r in pending], threshold=threshold)
            for (number, _), verdict in zip(pending, verdicts):
                _emit(out, {"line": number, **verdict.to_dict()})
            progress.update(len(pending))
            pending.clear()

        for number, record in _jsonl_records(stream):
            if isinstance(record, str):
                flush()
                bad += 1
                _emit(out, {"line": number, "error": record})
                print(f"guard-sdk: line {number}: {record}", file=sys.stderr)
                continue
            pending.append((number, record))
            if len(pending) >= JSONL_CHUNK:
                flush()
        flush()
        progress.close()
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    return EXIT_BAD_INPUT if bad else EXIT_OK


def _run_classify(args: argparse.Namespace, out: IO[str]) -> int:
    from guard_sdk.guard import Guard

    if (args.text is None) == (args.jsonl is None):
        raise InputError("give either TEXT or --jsonl FILE (see guard-sdk classify --help)")
    if args.jsonl is not None and args.response is not None:
        raise InputError("--response goes with TEXT; in --jsonl put a \"response\" field on each line")
    if args.jsonl is not None and str(args.jsonl) != "-" and not args.jsonl.is_file():
        raise InputError(f"{args.jsonl}: no such file")
    guard = Guard.load(args.bundle, backend=args.backend, precision=args.precision, threads=args.threads)
    if args.jsonl is not None:
        return _classify_jsonl(guard, args.jsonl, args.threshold, out)
    _emit(out, guard.classify(args.text, args.response, threshold=args.threshold).to_dict())
    return EXIT_OK


def _run_export(args: argparse.Namespace, out: IO[str]) -> int:
    try:
        from guard_sdk.export import ExportConfig, export_bundle
    except ImportError as e:
        raise BackendUnavailableError(
            f"export needs {e.name}, which is not installed: pip install 'guard-sdk[export]'"
        ) from e
    show_progress(not args.quiet)
    config = ExportConfig(
        formats=args.formats, precisions=args.precisions, name=args.name, max_length=args.max_length,
        threshold=args.threshold, prompt_truncation_side=args.prompt_truncation_side,
        window_overlap=args.window_overlap, fp32_tolerance=args.fp32_tolerance,
        fp32_min_agreement=args.fp32_min_agreement, int8_tolerance=args.int8_tolerance,
        int8_min_agreement=args.int8_min_agreement, int8_per_channel=args.int8_per_channel,
        fp16_tolerance=args.fp16_tolerance, fp16_min_agreement=args.fp16_min_agreement,
        int4_tolerance=args.int4_tolerance, int4_min_agreement=args.int4_min_agreement,
        quantize_embeddings=args.quantize_embeddings, opset=args.opset, overwrite=args.overwrite,
    )
    manifest = export_bundle(args.checkpoint, args.output, config, threads=args.threads)
    for a in manifest.artifacts:
        p = a.parity
        parity = (f"max|ΔP| {p.max_abs_diff:.1e}  agreement {100 * p.agreement:.1f}%" if p.measured
                  else "parity not measured (Core ML predicts on macOS only); spec checked")
        out.write(f"{args.output / a.path}  {a.format} {a.precision}  {a.bytes / 1e6:.1f} MB  {parity}\n")
    return EXIT_OK


def _run_random_checkpoint(args: argparse.Namespace, out: IO[str]) -> int:
    try:
        from guard_sdk.export.shapes import write_random_checkpoint
    except ImportError as e:
        raise BackendUnavailableError(f"needs {e.name}, which is not installed: pip install 'guard-sdk[export]'") from e
    if args.output.exists():
        raise InputError(f"{args.output} already exists; choose another path")
    write_random_checkpoint(args.shape, args.output, args.seed)
    out.write(f"{args.output}\n")
    return EXIT_OK


def _run_verify(args: argparse.Namespace, out: IO[str]) -> int:
    from guard_sdk.bundle import verify_bundle

    manifest = verify_bundle(args.bundle)
    out.write(f"{args.bundle}: {manifest.name}, schema {manifest.schema_version}, all files match guard.json\n")
    for a in manifest.artifacts:
        out.write(f"  {a.path}  {a.format} {a.precision}  {a.bytes:,} bytes  sha256 {a.sha256[:12]}\n")
    return EXIT_OK


def _training_module(name: str) -> Any:
    """Import a guard_sdk.training module, or say which extra brings what it needs."""
    from importlib import import_module

    try:
        return import_module(f"guard_sdk.training.{name}")
    except ImportError as e:
        raise BackendUnavailableError(
            f"{name} needs {e.name}, which is not installed: pip install 'guard-sdk[train,export]'"
        ) from e


def _run_finetune(args: argparse.Namespace, out: IO[str]) -> int:
    recipe_mod = _training_module("recipe")
    finetune_mod = _training_module("finetune")
    recipe = recipe_mod.load_recipe(args.recipe, args.overrides)  # refused here, before anything is touched
    if (args.command == "distill") != (recipe.distill is not None):
        raise InputError(f"{args.recipe}: `guard-sdk distill` runs recipes with a distill section and "
                         "`guard-sdk finetune` those without one (distill: null)")
    show_progress(not args.quiet)
    result = finetune_mod.finetune(recipe, recipe_path=str(args.recipe), data_dir=args.data_dir,
                                   output_dir=args.output_dir, export=not args.no_export, progress=not args.quiet)
    if result is None:  # a helper process of a multi-process run: the main one reports
        return EXIT_OK
    out.write(f"model: {result.model_dir}\nthreshold: {result.threshold:.4f} ({recipe.calibration.rule} on dev)\n")
    if result.bundle is not None:
        out.write(f"bundle: {result.bundle}\n")
        for name, rep in result.bundle_reports.items():
            m = rep["overall"]
            out.write(f"  {name}: F1 {m['f1'] or 0:.3f}  AUPRC {m['auprc'] or 0:.3f}  FPR {m['fpr'] or 0:.3f}  "
                      f"({m['n']} rows)\n")
    return EXIT_OK


def _run_ablation(args: argparse.Namespace, out: IO[str]) -> int:
    ablation = _training_module("ablation")
    ablation.load_ablation(args.recipe)  # every recipe refused here, before anything trains
    show_progress(not args.quiet)
    result = ablation.run_ablation(args.recipe, data_dir=args.data_dir, progress=not args.quiet)
    out.write(json.dumps(result, indent=2) + "\n")
    return EXIT_OK


def _run_adapt(args: argparse.Namespace, out: IO[str]) -> int:
    recipes = _training_module("adapt_recipe")
    recipe = recipes.load_adapt_recipe(args.recipe, args.overrides, args.method)  # refused before any loading
    data = _training_module("data")
    adapt = _training_module("adapt")
    examples = data.load_data(args.examples, root=args.data_dir, columns=args.columns)
    pool = None
    if args.pool and recipe.neighbours.k > 0:
        pool = data.concat([data.load_data(p, root=args.data_dir, split=args.pool_split) for p in args.pool])
    show_progress(not args.quiet)
    command = "guard-sdk " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["adapt"] else None
    inputs = {"examples": args.examples, "pool": list(args.pool or []), "pool_split": args.pool_split}
    model_dir = adapt.adapt(args.base, examples, pool, recipe, args.output, shots=args.shots, command=command,
                            inputs=inputs, progress=not args.quiet)
    out.write(f"model: {model_dir}\nexport it: guard-sdk export {model_dir} -o BUNDLE\n")
    return EXIT_OK


def _run_dapt_experiment(args: argparse.Namespace, out: IO[str]) -> int:
    recipe = _training_module("adapt_recipe").load_experiment(args.recipe, args.overrides)
    experiment = _training_module("dapt_experiment")
    show_progress(not args.quiet)
    summary = experiment.run_experiment(recipe, recipe_path=str(args.recipe), data_dir=args.data_dir,
                                        progress=not args.quiet)
    out.write(json.dumps(summary, indent=2) + "\n")
    out.write(f"table: {recipe.table}\n")
    return EXIT_OK


def _augment_recipe(args: argparse.Namespace) -> Any:
    """The recipe with the command line's overrides; refused before any model is loaded."""
    import dataclasses

    recipe = _training_module("augment_recipe").load_augment_recipe(args.recipe)
    if args.output_dir:
        recipe = dataclasses.replace(recipe, output_dir=args.output_dir)
    if getattr(args, "count", None):
        recipe = dataclasses.replace(recipe, instructions=dataclasses.replace(recipe.instructions, count=args.count))
    show_progress(not args.quiet)
    return recipe


def _run_augment(args: argparse.Namespace, out: IO[str]) -> int:
    recipe = _augment_recipe(args)
    run = _training_module("augment_run")
    if args.stage == "instructions":
        summary = run.run_instructions(recipe, data_dir=args.data_dir, progress=not args.quiet)
    else:
        summary = run.run_responses(recipe, progress=not args.quiet)
    out.write(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK


def _run_label(args: argparse.Namespace, out: IO[str]) -> int:
    summary = _training_module("augment_run").run_labels(_augment_recipe(args), progress=not args.quiet)
    out.write(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK


def _run_eval(args: argparse.Namespace, out: IO[str]) -> int:
    show_progress()  # our lines; not the CUDA-kernel warnings torchao prints when transformers imports it
    data = _training_module("data")
    evaluate = _training_module("evaluate")
    dataset = data.concat([data.load_data(spec, root=args.data_dir, columns=args.columns, split=args.split)
                           for spec in args.data])
    unlabelled = sum(label is None for label in dataset["label"])
    if unlabelled:
        raise InputError(f"{unlabelled} rows have no label (e.g. hh_harmless_base); evaluation needs labels")
    if args.checkpoint:
        scores = evaluate.score_with_checkpoint(args.checkpoint, dataset, args.max_length)
        threshold, what = (0.5 if args.threshold is None else args.threshold), f"checkpoint {args.checkpoint}"
    else:
        from guard_sdk.guard import Guard

        guard = Guard.load(args.bundle, backend=args.backend, precision=args.precision, threads=args.threads)
        scores = evaluate.score_with_guard(guard, dataset)
        threshold = guard.threshold if args.threshold is None else args.threshold
        what = f"{guard.manifest.name} ({guard.artifact.path}, {guard.backend.name})"
    result = evaluate.report(dataset["label"], scores, dataset["source"], evaluate.levels_of(dataset), threshold)
    title = f"{', '.join(args.data)}{f' [{args.split}]' if args.split else ''}: {what}"
    if args.out:
        json_path, md_path = evaluate.write_report(result, args.out, "eval", title)
        print(f"guard-sdk: wrote {json_path} and {md_path}", file=sys.stderr)
    out.write(evaluate.to_markdown(result, title))
    return EXIT_OK


def _run_bench(args: argparse.Namespace, out: IO[str]) -> int:
    from guard_sdk.bench import machine, report, run
    from guard_sdk.guard import default_bundle_path

    bundles = args.bundle or [default_bundle_path()]
    configs = run.plan(bundles, backends=args.backends, precisions=args.precisions, lengths=args.tokens,
                       threads=args.threads, batch=args.batch, warmup=args.warmup, runs=args.runs)
    if args.references:
        configs += [c for b in bundles for c in run.plan_references(
            b, args.checkpoint, lengths=args.tokens, threads=args.threads, batch=args.batch, warmup=args.warmup,
            runs=args.runs)]
    records = run.run(configs, progress=not args.quiet)
    here = machine.machine()
    rated = None
    if args.data:
        from guard_sdk.bench.quality import artifact_quality

        data = _training_module("data")
        rows = data.concat([data.load_data(d, split=args.split) for d in args.data])
        rows = rows.select(range(min(args.quality_rows, len(rows))))
        rated = [q for b in bundles for q in artifact_quality(b, rows["prompt"], rows["response"], rows["label"],
                                                              progress=not args.quiet)]
    out.write(report.full_markdown(records, here, rated))
    if args.out:
        for path in report.write(records, here, args.out, rated):
            out.write(f"wrote {path}\n")
    failed = sum("error" in r for r in records)
    return EXIT_OK if not failed else EXIT_FAILURE


def _run_android(args: argparse.Namespace, out: IO[str]) -> int:
    from guard_sdk import android
    from guard_sdk.guard import default_bundle_path

    if args.android_command == "vectors":
        path = android.write_vectors(args.bundle or default_bundle_path(), args.output, args.backend, args.precision)
        out.write(f"wrote {path}\n")
    elif args.android_command == "assets":
        assets = args.assets or android.default_assets()
        for path in android.copy_assets(args.bundle or default_bundle_path(), assets, args.precision):
            out.write(f"copied {path}\n")
    else:
        from guard_sdk.bench import report

        results, run = android.read_pulled(args.pulled)
        records, device = android.records_from_app(results, run), android.device_machine(results)
        out.write(report.full_markdown(records, device, None))
        if args.out:
            for path in report.write(records, device, args.out, None):
                out.write(f"wrote {path}\n")
    return EXIT_OK


COMMANDS = {"classify": _run_classify, "export": _run_export, "random-checkpoint": _run_random_checkpoint,
            "verify": _run_verify, "finetune": _run_finetune, "distill": _run_finetune, "augment": _run_augment,
            "label": _run_label, "ablation": _run_ablation, "adapt": _run_adapt,
            "dapt-experiment": _run_dapt_experiment, "eval": _run_eval, "bench": _run_bench,
            "android": _run_android}


def main(argv: list[str] | None = None, out: IO[str] | None = None) -> int:
    """Run the CLI; returns the exit code rather than exiting, so tests can call it in-process."""
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    try:
        return COMMANDS[args.command](args, out)
    except ParityError as e:
        print(f"guard-sdk: export failed: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except BackendUnavailableError as e:
        print(f"guard-sdk: error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except (InputError, InputTypeError, BundleError, ExportError) as e:
        print(f"guard-sdk: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:  # the last word: one line, not a traceback, unless GUARD_SDK_DEBUG is set
        if os.environ.get("GUARD_SDK_DEBUG"):
            raise
        print(f"guard-sdk: failed: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILURE


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
