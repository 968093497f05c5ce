"""export_bundle: checkpoint → staged artifacts → parity checks → guard.json → the finished bundle.

Nothing appears at the output path until every artifact has passed its parity check: the work happens in
a hidden staging folder beside it, which is renamed into place at the end and removed on any failure. What
is replaced at the output path is only ever an empty folder or an earlier guard bundle.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from guard_sdk.backends import open_backend
from guard_sdk.bundle import (
    MANIFEST_NAME,
    TOKENIZER_NAME,
    Artifact,
    CategoryHead,
    Manifest,
    Parity,
    TextViews,
    describe_file,
    write_manifest,
)
from guard_sdk.errors import ExportError, FolderInUseError, ParityError
from guard_sdk.export.checkpoint import (
    bundle_encoder,
    category_heads,
    default_max_length,
    load_checkpoint,
    model_inputs,
    training_record,
)
from guard_sdk.export.checkpoint import unsafe_index as checkpoint_unsafe_index
from guard_sdk.export.graph import export_program
from guard_sdk.export.lookalikes import lookalike_table
from guard_sdk.export.model_card import write_model_card
from guard_sdk.export.onnx import export_onnx, quantize_int8
from guard_sdk.export.parity import (
    ParityInputs,
    ParityRow,
    measure,
    parity_inputs,
    sample_rows,
    torch_runner,
    unmeasured,
)
from guard_sdk.guard import category_probability, run_windows, unsafe_probability, windows_per_call
from guard_sdk.labels import LABELS
from guard_sdk.views import EXPORT_VIEWS, check_view_names

if TYPE_CHECKING:
    from torch.export import ExportedProgram

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
    overwrite: bool = False  # replace an existing guard bundle (never any other non-empty folder)
    unsafe_label: str | int | None = None  # None: what config.id2label's names mean (checkpoint.unsafe_index)
    allow_untrained_head: bool = False  # export even where the checkpoint's files lack weights (no trained head)
    parity_data: tuple[ParityRow, ...] = ()  # labelled rows whose windows parity is checked on beside the fixed texts
    parity_rows: int = 500  # at most this many rows of parity_data, drawn with a fixed seed
    views: tuple[str, ...] = EXPORT_VIEWS  # the guard_sdk.views the bundle declares (with the look-alike table)

    def validate(self) -> None:
        if not self.formats or self.precisions == ():
            raise ExportError("name at least one format and one precision")
        if problem := check_view_names(self.views):
            raise ExportError(problem)
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
        if self.parity_rows < 1:
            raise ExportError(f"parity_rows must be at least 1, got {self.parity_rows}")
        for i, row in enumerate(self.parity_data):
            if not (isinstance(row, tuple | list) and len(row) == 3 and isinstance(row[0], str)
                    and (row[1] is None or isinstance(row[1], str)) and row[2] in (0, 1, None)):
                raise ExportError(f"parity_data row {i} must be (prompt, response or None, label 0, 1 or None), "
                                  f"got {str(row)[:200]}")

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

    def __init__(self, staging: Path, parity: ParityInputs, reference: np.ndarray, threshold: float,
                 manifest_inputs: list[str], pad_id: int, unsafe_index: int, batch_size: int,
                 categories: Sequence[CategoryHead] = ()):
        self.staging, self.parity, self.reference = staging, parity, reference  # reference: PyTorch's logits
        self.threshold, self.inputs, self.pad_id = threshold, manifest_inputs, pad_id
        self.unsafe_index, self.batch_size, self.categories = unsafe_index, batch_size, list(categories)

    def check(self, fmt: str, precision: str, path: Path, run: Callable[..., np.ndarray],
              bounds: tuple[float, float], quantization: dict[str, Any] | None = None,
              batch: int | None = None, spec: dict[str, Any] | None = None) -> Artifact:
        tolerance, min_agreement = bounds
        logits = run_windows(run, self.parity.windows, self.pad_id, self.inputs,
                             windows_per_call(quantization, batch, self.batch_size))  # as the runtime runs it
        indices = [c.index for c in self.categories]
        parity = measure(unsafe_probability(self.reference, self.unsafe_index),
                         unsafe_probability(logits, self.unsafe_index), self.parity, self.threshold, tolerance,
                         min_agreement, categories=(category_probability(self.reference, indices),
                                                    category_probability(logits, indices),
                                                    [c.threshold for c in self.categories]))
        max_abs_diff, agreement = parity.figures()
        log.info("parity %s: max |ΔP(unsafe)| %.2e (tolerance %.0e) over %d windows, agreement %.1f%% of the %d "
                 "further than the tolerance from the threshold", path.name, max_abs_diff, tolerance,
                 parity.windows, 100 * agreement, parity.counted_windows)
        categories = ""
        if parity.category_max_abs_diff is not None:
            agreed = 100 * (parity.category_agreement or 0)
            categories = (f"; over the {len(self.categories)} categories, max |ΔP(category)| "
                          f"{parity.category_max_abs_diff:.3g} and agreement {agreed:.1f}%")
            log.info("parity %s%s", path.name, categories)
        if not parity.passed:
            raise ParityError(
                f"{path.name} ({fmt} {precision}) disagrees with PyTorch: max |ΔP(unsafe)| "
                f"{max_abs_diff:.3g} (tolerance {tolerance:g}) over {parity.windows} windows of "
                f"{parity.texts} texts ({parity.sample_texts} from the parity sample), agreement "
                f"{100 * agreement:.1f}% of the {parity.counted_windows} windows further than the tolerance "
                f"from the threshold (needs {100 * min_agreement:.1f}%; {parity.excluded_windows} nearer were not "
                f"judged){categories}; nothing was written. Loosen the tolerance only if you accept the difference."
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


def _executorch_artifacts(program: ExportedProgram, staging: Path, config: ExportConfig, checker: _Checker,
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


def _coreml_artifacts(program: ExportedProgram, staging: Path, config: ExportConfig, checker: _Checker,
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
        parity = unmeasured(checker.parity, *config.bounds(precision), note)
        artifacts.append(checker.describe("coreml", precision, path, parity, quantization, 1, spec))
    return artifacts


def _check_output(output: Path, checkpoint: str | Path, overwrite: bool) -> None:
    """Refuse an output whose replacement would delete what export did not write: the checkpoint or a folder
    that holds it, or a folder that is neither empty nor a guard bundle. An earlier bundle needs ``overwrite``."""
    source = Path(checkpoint)
    if source.exists() and output.resolve() in (source.resolve(), *source.resolve().parents):
        raise FolderInUseError(f"{output} is the checkpoint being exported or holds it ({checkpoint}): writing the "
                               "bundle there would delete it; choose another folder for the output (-o)")
    if not output.exists() and not output.is_symlink():
        return
    if not output.is_dir():
        raise FolderInUseError(f"{output} is a file, not a folder; choose a new or empty folder for the output (-o)")
    if not any(output.iterdir()):
        return
    if not (output / MANIFEST_NAME).is_file():
        raise FolderInUseError(
            f"{output} holds files but no {MANIFEST_NAME}, so it is not a guard bundle: export replaces only a guard "
            "bundle or an empty folder, and replacing this one would delete what is in it. Choose a new or empty "
            "folder for the output (-o)")
    if not overwrite:
        raise ExportError(f"{output} already exists; choose another path or pass overwrite (--overwrite)")


def _umask() -> int:
    """The process's umask. Linux shows it in /proc/self/status; elsewhere it can only be read by setting it,
    which for a moment changes it for every thread, so that is the fallback."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Umask:")), 8)
    except (OSError, StopIteration, IndexError, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def _follow_umask(folder: Path) -> None:
    """Give the staged bundle the modes any tool's output gets (0755/0644 under umask 022): tempfile.mkdtemp
    made it 0700, which no other account could read."""
    mask = _umask()
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def _commit(staging: Path, output: Path, checkpoint: str | Path, overwrite: bool) -> None:
    """Move the finished bundle into place; an old bundle goes only once the new one is there."""
    _check_output(output, checkpoint, overwrite)  # again: the folder may have changed during the export
    _follow_umask(staging)
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
    _check_output(output, checkpoint, config.overwrite)
    output.parent.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_checkpoint(checkpoint, config.allow_untrained_head)
    unsafe_index = checkpoint_unsafe_index(model.config, config.unsafe_label)
    max_length = config.max_length or default_max_length(model, tokenizer)
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and max_length > positions:
        raise ExportError(f"max_length {max_length} exceeds the {positions} positions {checkpoint} has; "
                          f"export with --max-length {positions} or less")
    training = training_record(checkpoint)
    threshold = config.threshold if config.threshold is not None else (training or {}).get("threshold", 0.5)
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.partial-"))
    try:
        encoder = bundle_encoder(tokenizer, staging, max_length, config.prompt_truncation_side,
                                 config.window_overlap)
        text = encoder.text
        parity = parity_inputs(encoder, sample_rows(config.parity_data, config.parity_rows))
        inputs = model_inputs(model, tokenizer)
        log.info("scoring %d parity windows (%d from %d sample rows) with PyTorch ...", len(parity.windows),
                 parity.sample_windows, parity.sample_texts)
        reference = run_windows(torch_runner(model), parity.windows, text.pad_id, inputs, config.batch_size)
        categories = category_heads(model.config, training)
        checker = _Checker(staging, parity, reference, threshold, inputs, text.pad_id, unsafe_index,
                           config.batch_size, categories)
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
        manifest = Manifest(
            name=config.name or output.name,
            labels=[LABELS[int(i == unsafe_index)] for i in range(2)],
            unsafe_index=unsafe_index,
            threshold=threshold,
            max_length=max_length,
            tokenizer=describe_file(staging, TOKENIZER_NAME),
            text=text,
            inputs=inputs,
            output="logits",
            artifacts=artifacts,
            categories=categories,
            views=TextViews(list(config.views), lookalike_table()) if config.views else None,
            source={
                "checkpoint": str(checkpoint),
                "model_type": model.config.model_type,
                "parameters": sum(p.numel() for p in model.parameters()),
                # the runtime refuses a max_length edited past the model's positions
                **({"max_positions": positions} if isinstance(positions, int) else {}),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "versions": _versions(config.formats),
                **({"training": training} if training else {}),
            },
        )
        write_manifest(staging, manifest)
        write_model_card(staging, manifest)
        _commit(staging, output, checkpoint, config.overwrite)
        log.info("wrote %s", output)
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)
