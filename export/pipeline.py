"""export_bundle: checkpoint → staged artifacts → parity checks → guard.json → the finished bundle.

Nothing appears at the output path until every artifact has passed its parity check: the work happens in
a hidden staging folder beside it, which is renamed into place at the end and removed on any failure.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from guard_sdk.backends import open_backend
from guard_sdk.bundle import (
    TOKENIZER_NAME,
    Artifact,
    Manifest,
    Parity,
    describe_file,
    write_manifest,
)
from guard_sdk.errors import ExportError, ParityError
from guard_sdk.export.checkpoint import (
    bundle_encoder,
    default_max_length,
    load_checkpoint,
    model_inputs,
    training_record,
)
from guard_sdk.export.checkpoint import unsafe_index as checkpoint_unsafe_index
from guard_sdk.export.graph import export_program
from guard_sdk.export.model_card import write_model_card
from guard_sdk.export.onnx import export_onnx, quantize_int8
from guard_sdk.export.parity import measure, parity_inputs, torch_runner, unmeasured
from guard_sdk.guard import score_windows, windows_per_call
from guard_sdk.tokenization import Window

log = logging.getLogger(__name__)

# format -> the precisions it can be exported in; the first ones are what an export writes by default.
FORMATS: dict[str, tuple[str, ...]] = {
    "onnx": ("fp32", "int8"),
    "executorch": ("fp32", "int8", "int4"),
    "coreml": ("fp16", "int8", "palette4"),
}
DEFAULT_PRECISIONS: dict[str, tuple[str, ...]] = {"onnx": ("fp32", "int8"), "executorch": ("fp32", "int8"),
                                                  "coreml": ("fp16", "int8")}
SUFFIXES = {"onnx": ".onnx", "executorch": ".pte", "coreml": ".mlpackage"}
FULL_PRECISION = ("fp32", "fp16")  # written as model<suffix>; the others as model.<precision><suffix>
_PER_CHANNEL = {"auto": (True, False), "on": (True,), "off": (False,)}


def artifact_name(fmt: str, precision: str) -> str:
    return f"model{SUFFIXES[fmt]}" if precision in FULL_PRECISION else f"model.{precision}{SUFFIXES[fmt]}"


@dataclass(frozen=True)
class ExportConfig:
    """Every knob of an export; the CLI's flags map one to one onto these fields."""

    formats: tuple[str, ...] = ("onnx",)
    precisions: tuple[str, ...] | None = None  # None: each format's DEFAULT_PRECISIONS; else those a format has
    name: str | None = None  # None: the output folder's name
    max_length: int | None = None  # None: the checkpoint's own limit
    threshold: float | None = None  # None: the threshold the checkpoint was calibrated with, else 0.5
    prompt_truncation_side: str = "left"
    window_overlap: int | None = None  # None: max_length // 8
    fp32_tolerance: float = 1e-4
    fp32_min_agreement: float = 1.0
    int8_tolerance: float = 0.05
    int8_min_agreement: float = 0.98
    int8_per_channel: str = "auto"  # auto: per-channel where it passes parity, else per-tensor
    fp16_tolerance: float = 0.01
    fp16_min_agreement: float = 0.99
    int4_tolerance: float = 0.25  # int4 and palette4: per-channel 4-bit weights drift more than int8
    int4_min_agreement: float = 0.95
    quantize_embeddings: bool = True  # ExecuTorch int8/int4: int8 embedding rows (ONNX and Core ML always do)
    opset: int | None = None  # None: optimum's default for the architecture
    batch_size: int = 8
    overwrite: bool = False

    def validate(self) -> None:
        if not self.formats or self.precisions == ():
            raise ExportError("name at least one format and one precision")
        for fmt in self.formats:
            if fmt not in FORMATS:
                raise ExportError(f"unknown format {fmt!r}; this guard-sdk exports: {', '.join(FORMATS)}")
        for prec in self.precisions or ():
            if not any(prec in FORMATS[fmt] for fmt in self.formats):
                held = "; ".join(f"{fmt} has {', '.join(FORMATS[fmt])}" for fmt in self.formats)
                raise ExportError(f"no format named has precision {prec!r}: {held}")
        for fmt in self.formats:
            if not self.precisions_of(fmt):
                raise ExportError(f"format {fmt} has none of the precisions {', '.join(self.precisions or ())}; "
                                  f"it has: {', '.join(FORMATS[fmt])}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ExportError(f"threshold must lie in [0, 1], got {self.threshold}")
        if self.prompt_truncation_side not in ("left", "right"):
            raise ExportError("prompt_truncation_side must be 'left' or 'right'")
        if self.int8_per_channel not in _PER_CHANNEL:
            raise ExportError(f"int8_per_channel must be one of {', '.join(_PER_CHANNEL)}")

    def precisions_of(self, fmt: str) -> tuple[str, ...]:
        """The precisions written for ``fmt``: the ones named that it has, or its defaults."""
        if self.precisions is None:
            return DEFAULT_PRECISIONS[fmt]
        return tuple(p for p in FORMATS[fmt] if p in self.precisions)

    def bounds(self, precision: str) -> tuple[float, float]:
        """(tolerance on max |ΔP(unsafe)|, least decision agreement) an artifact of ``precision`` must meet."""
        name = "int4" if precision == "palette4" else precision
        return getattr(self, f"{name}_tolerance"), getattr(self, f"{name}_min_agreement")


def _versions(formats: tuple[str, ...]) -> dict[str, str]:
    packages = ["guard-sdk", "torch", "transformers", "onnxruntime", "optimum-onnx"]
    packages += ["executorch", "torchao"] if "executorch" in formats else []
    packages += ["coremltools"] if "coreml" in formats else []
    return {pkg: metadata.version(pkg) for pkg in packages}


class _Checker:
    """Scores artifacts on the parity windows and turns the result into an Artifact or a ParityError."""

    def __init__(self, staging: Path, windows: list[Window], texts: int, reference: np.ndarray,
                 threshold: float, manifest_inputs: list[str], pad_id: int, unsafe_index: int, batch_size: int):
        self.staging, self.windows, self.texts, self.reference = staging, windows, texts, reference
        self.threshold, self.inputs, self.pad_id = threshold, manifest_inputs, pad_id
        self.unsafe_index, self.batch_size = unsafe_index, batch_size

    def check(self, fmt: str, precision: str, path: Path, run: Callable[..., np.ndarray],
              bounds: tuple[float, float], quantization: dict[str, Any] | None = None,
              batch: int | None = None, spec: dict[str, Any] | None = None) -> Artifact:
        tolerance, min_agreement = bounds
        scores = score_windows(run, self.windows, self.pad_id, self.inputs, self.unsafe_index,
                               windows_per_call(quantization, batch, self.batch_size))  # as the runtime runs it
        parity = measure(self.reference, scores, self.texts, self.threshold, tolerance, min_agreement)
        log.info("parity %s: max |ΔP(unsafe)| %.2e (tolerance %.0e), agreement %.1f%% of %d windows",
                 path.name, parity.max_abs_diff, tolerance, 100 * parity.agreement, parity.windows)
        if not parity.passed:
            raise ParityError(
                f"{path.name} ({fmt} {precision}) disagrees with PyTorch: max |ΔP(unsafe)| "
                f"{parity.max_abs_diff:.3g} (tolerance {tolerance:g}), agreement {100 * parity.agreement:.1f}% "
                f"of {parity.windows} windows (needs {100 * min_agreement:.1f}%); nothing was written. "
                "Loosen the tolerance only if you accept the difference."
            )
        return self.describe(fmt, precision, path, parity, quantization, batch, spec)

    def describe(self, fmt: str, precision: str, path: Path, parity: Parity, quantization: dict[str, Any] | None,
                 batch: int | None, spec: dict[str, Any] | None = None) -> Artifact:
        """The manifest entry of a staged artifact: its measured size and hash, parity and, where checked, spec."""
        entry = describe_file(self.staging, path.name)
        return Artifact(path=entry.path, sha256=entry.sha256, bytes=entry.bytes, format=fmt, precision=precision,
                        parity=parity, quantization=quantization, batch=batch, spec=spec)


def _onnx_artifacts(
    model: Any, staging: Path, config: ExportConfig, checker: _Checker, threads: int | None
) -> list[Artifact]:
    fp32_path = staging / "model.onnx"
    log.info("exporting ONNX (optimum-onnx) ...")
    export_onnx(model, fp32_path, config.opset)
    artifacts = []
    if "fp32" in config.precisions_of("onnx"):
        run = open_backend("onnxruntime", fp32_path, threads, "logits", checker.inputs).run
        artifacts.append(checker.check("onnx", "fp32", fp32_path, run, config.bounds("fp32")))
    if "int8" in config.precisions_of("onnx"):
        int8_path = staging / "model.int8.onnx"
        choices = _PER_CHANNEL[config.int8_per_channel]
        for per_channel in choices:
            log.info("quantizing ONNX to int8 (%s) ...", "per-channel" if per_channel else "per-tensor")
            quantization = quantize_int8(fp32_path, int8_path, per_channel)
            run = open_backend("onnxruntime", int8_path, threads, "logits", checker.inputs).run
            try:
                artifacts.append(checker.check("onnx", "int8", int8_path, run, config.bounds("int8"), quantization))
                break
            except ParityError:
                if per_channel is choices[-1]:
                    raise
                log.info("per-channel int8 missed parity; trying per-tensor")
    if "fp32" not in config.precisions_of("onnx"):
        fp32_path.unlink()
    return artifacts


def _executorch_artifacts(program: Any, staging: Path, config: ExportConfig, checker: _Checker,
                          max_length: int, threads: int | None) -> list[Artifact]:
    from guard_sdk.export import executorch

    artifacts = []
    for precision in config.precisions_of("executorch"):
        path = staging / artifact_name("executorch", precision)
        quantization = None
        source = program
        if precision != "fp32":
            log.info("quantizing for ExecuTorch (%s weights, int8 dynamic activations%s) ...", precision,
                     ", int8 embeddings" if config.quantize_embeddings else "")
            source = executorch.quantize(program, checker.inputs, max_length, precision, config.quantize_embeddings)
            quantization = executorch.quantization_record(precision, config.quantize_embeddings)
        log.info("lowering to XNNPACK and writing %s ...", path.name)
        executorch.write_pte(source, path)
        run = open_backend("executorch", path, threads, "logits", checker.inputs).run
        artifacts.append(checker.check("executorch", precision, path, run, config.bounds(precision), quantization,
                                       batch=1))
    return artifacts


def _coreml_artifacts(program: Any, staging: Path, config: ExportConfig, checker: _Checker,
                      max_length: int) -> list[Artifact]:
    from guard_sdk.export import coreml

    artifacts = []
    log.info("converting to Core ML (fp16 ML Program) ...")
    fp16 = coreml.convert(program)
    for precision in config.precisions_of("coreml"):
        path = staging / artifact_name("coreml", precision)
        log.info("writing %s ...", path.name)
        model, quantization = coreml.compress(fp16, precision)
        model.save(str(path))
        spec = coreml.read_spec(path)
        coreml.check_spec(spec, checker.inputs, max_length, precision, path)
        if sys.platform == "darwin":
            run = open_backend("coreml", path, None, "logits", checker.inputs).run
            artifacts.append(checker.check("coreml", precision, path, run, config.bounds(precision), quantization,
                                           batch=1, spec=spec))
            continue
        log.info("Core ML predicts only on macOS: %s checked by its spec, parity not measured", path.name)
        note = (f"Core ML predicts only on macOS and this bundle was exported on {sys.platform}; "
                "the export checked the spec instead (inputs, outputs, dtypes, deployment target, operations)")
        parity = unmeasured(checker.texts, len(checker.windows), *config.bounds(precision), note)
        artifacts.append(checker.describe("coreml", precision, path, parity, quantization, 1, spec))
    return artifacts


def _commit(staging: Path, output: Path, overwrite: bool) -> None:
    """Move the finished bundle into place; with overwrite, the old one goes only once the new one is there."""
    if output.exists():
        trash = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.old-"))
        os.replace(output, trash / output.name)
        os.replace(staging, output)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, output)


def export_bundle(
    checkpoint: str | Path,
    output: str | Path,
    config: ExportConfig | None = None,
    threads: int | None = None,
) -> Manifest:
    """Export a Hugging Face sequence-classification checkpoint (folder or hub id) to a guard bundle."""
    config = config or ExportConfig()
    config.validate()
    output = Path(output).absolute()
    if output.exists() and not config.overwrite:
        raise ExportError(f"{output} already exists; choose another path or pass overwrite (--overwrite)")
    output.parent.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_checkpoint(checkpoint)
    max_length = config.max_length or default_max_length(model, tokenizer)
    training = training_record(checkpoint)
    threshold = config.threshold if config.threshold is not None else (training or {}).get("threshold", 0.5)
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.partial-"))
    try:
        encoder = bundle_encoder(tokenizer, staging, max_length, config.prompt_truncation_side,
                                 config.window_overlap)
        text = encoder.text
        windows, texts = parity_inputs(encoder)
        inputs = model_inputs(model, tokenizer)
        unsafe_index = checkpoint_unsafe_index(model)
        log.info("scoring %d parity windows with PyTorch ...", len(windows))
        reference = score_windows(torch_runner(model), windows, text.pad_id, inputs, unsafe_index, config.batch_size)
        checker = _Checker(staging, windows, texts, reference, threshold, inputs, text.pad_id,
                           unsafe_index, config.batch_size)
        artifacts: list[Artifact] = []
        if "onnx" in config.formats:
            artifacts += _onnx_artifacts(model, staging, config, checker, threads)
        if "executorch" in config.formats or "coreml" in config.formats:
            log.info("torch.export: batch 1, sequence length 1 to %d ...", max_length)
            program = export_program(model, inputs, max_length)
            if "executorch" in config.formats:
                artifacts += _executorch_artifacts(program, staging, config, checker, max_length, threads)
            if "coreml" in config.formats:
                artifacts += _coreml_artifacts(program, staging, config, checker, max_length)
        labels = ["safe", "safe"]
        labels[unsafe_index] = "unsafe"
        manifest = Manifest(
            name=config.name or output.name,
            labels=labels,
            unsafe_index=unsafe_index,
            threshold=threshold,
            max_length=max_length,
            tokenizer=describe_file(staging, TOKENIZER_NAME),
            text=text,
            inputs=inputs,
            output="logits",
            artifacts=artifacts,
            source={
                "checkpoint": str(checkpoint),
                "model_type": model.config.model_type,
                "parameters": sum(p.numel() for p in model.parameters()),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "versions": _versions(config.formats),
                **({"training": training} if training else {}),
            },
        )
        write_manifest(staging, manifest)
        write_model_card(staging, manifest)
        _commit(staging, output, config.overwrite)
        log.info("wrote %s", output)
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)
