"""Backends run one exported artifact. Each format has one; its library is imported only when used."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np

from guard_sdk.errors import BackendUnavailableError, UnknownFormatError

if TYPE_CHECKING:
    from guard_sdk.bundle import Artifact, Manifest


class Backend(Protocol):
    """Runs padded model inputs and returns the logits, shape (batch, labels)."""

    name: str
    threads: int | None  # the intra-op threads it runs with; None: its library schedules its own

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray: ...


class BackendInfo(NamedTuple):
    format: str  # the artifact format it runs
    target: str  # module:class
    install: str  # what brings its library
    platforms: tuple[str, ...] | None  # sys.platform values where it predicts; None: everywhere


BACKENDS: dict[str, BackendInfo] = {
    "onnxruntime": BackendInfo("onnx", "guard_sdk.backends.onnxruntime:OnnxRuntimeBackend", "guard-sdk", None),
    "executorch": BackendInfo("executorch", "guard_sdk.backends.executorch:ExecuTorchBackend",
                              "guard-sdk[executorch]", None),
    "coreml": BackendInfo("coreml", "guard_sdk.backends.coreml:CoreMLBackend", "guard-sdk[coreml]", ("darwin",)),
}


def auto_order(platform: str = sys.platform) -> tuple[str, ...]:
    """The order "auto" tries backends in: fastest first on ``platform``.

    Core ML (Neural Engine and GPU) leads on Apple machines. Elsewhere ONNX Runtime leads: on the 2-core x86
    development VM, `guard-sdk bench --threads 1` of the packaged MiniLM in int8 (a bundle with both formats)
    gave p50 12.7 ms for ONNX Runtime against 25.1 ms for ExecuTorch on a 110-token text, where the cost is,
    and 3.5 against 2.5 ms on a 10-token prompt. ExecuTorch is the format for phones, which run it natively.
    """
    return ("coreml", "onnxruntime", "executorch") if platform == "darwin" else ("onnxruntime", "executorch")


def runs_here(backend: str, platform: str = sys.platform) -> bool:
    platforms = BACKENDS[backend].platforms
    return platforms is None or platform in platforms


def check_platform(backend: str) -> None:
    """Refuse a backend that cannot predict on this platform (before any file of its is read)."""
    if not runs_here(backend):
        raise BackendUnavailableError(f"backend {backend!r} predicts only on "
                                      f"{', '.join(BACKENDS[backend].platforms or ())}, not on {sys.platform}")


def backend_format(backend: str) -> str:
    """The artifact format a backend runs; refuse an unknown backend with the known ones."""
    if backend not in BACKENDS:
        known = ", ".join(["auto", *BACKENDS])
        raise UnknownFormatError(f"unknown backend {backend!r}; choose one of: {known}")
    return BACKENDS[backend].format


def open_backend(backend: str, source: Path | bytes, threads: int | None, output: str, inputs: Sequence[str], *,
                 requested: bool = True, where: Path | None = None) -> Backend:
    """Instantiate ``backend`` on the artifact ``source`` (its verified bytes, or the path of a folder artifact),
    whose graph takes ``inputs`` in that order; ``where`` names a source given as bytes in errors.

    ``threads`` None leaves the library's own default (every core: export's parity runs want that);
    ``requested`` False says the count is ``default_threads``' choice, not the caller's, so it may yield to a
    thread pool that an earlier guard already fixed (ExecuTorch's, one per process).
    """
    info = BACKENDS[backend]
    check_platform(backend)
    module_name, class_name = info.target.split(":")
    try:
        module = import_module(module_name)
    except ImportError as e:
        raise BackendUnavailableError(
            f"backend {backend!r} needs a library that is not installed ({e.name}); pip install '{info.install}'"
        ) from e
    return getattr(module, class_name)(source, threads=threads, output=output, inputs=list(inputs),
                                       requested=requested, where=where)


def rows(inputs: dict[str, np.ndarray], names: Sequence[str]) -> list[list[np.ndarray]]:
    """Split a batch into single-row input lists in ``names`` order, for graphs exported at batch 1."""
    batch = len(next(iter(inputs.values())))
    return [[inputs[name][i : i + 1] for name in names] for i in range(batch)]


# default_threads: a model under this many parameters runs on one intra-op thread, a larger one on the physical
# cores, at most MAX_DEFAULT_THREADS of them. The figures behind both are in default_threads' docstring.
PARALLEL_PARAMETERS = 100_000_000
MAX_DEFAULT_THREADS = 4
# Bytes a parameter takes in an artifact of each precision: the size of a model whose guard.json does not say.
BYTES_PER_PARAMETER = {"fp32": 4.0, "fp16": 2.0, "int8": 1.0, "int4": 0.5, "palette4": 0.5}


def usable_cpus() -> list[int]:
    """The logical CPUs this process may run on: its affinity mask (taskset's, a container's cpuset) where the
    platform has one, else every CPU."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def physical_cores() -> int:
    """The usable CPUs with SMT siblings counted once (Linux's sysfs topology; elsewhere each CPU counts): a
    second hardware thread on a busy core adds little to the dense products a transformer is made of."""
    cores = set()
    for cpu in usable_cpus():
        try:
            cores.add(Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return len(cores)


def model_parameters(manifest: Manifest, artifact: Artifact) -> float:
    """The model's parameter count: guard.json's ``source.parameters`` where export recorded it, else estimated
    from the artifact's size and precision (fp32 where the precision is not one of BYTES_PER_PARAMETER's)."""
    recorded = manifest.source.get("parameters")
    if isinstance(recorded, int) and recorded > 0:
        return recorded
    return artifact.bytes / BYTES_PER_PARAMETER.get(artifact.precision, 4.0)


def default_threads(manifest: Manifest, artifact: Artifact) -> int:
    """The intra-op threads a guard runs with when its caller names none: 1 for a model under 100M parameters,
    else the process's physical cores, at most 4.

    Work per call decides it. A call scores at most one window of max_length tokens, so its work is bounded by
    the model's size; a small model gives each operator too little work to pay for waking and joining a second
    thread. `guard-sdk bench` on the 2-core x86 VM (benchmarks/RESULTS.md, p50 ms at 1 against 2 threads):

    - the embedded guard, a 22.7M-parameter MiniLM in int8 ONNX: 2.97 against 7.16 at 16 tokens, 14.84
      against 26.49 at 128 and 55.63 against 78.11 at 512: one thread wins at every length, and ONNX
      Runtime's own default (every physical core) was that slow path;
    - the paper's student shape, a 435M-parameter DeBERTa-v3-large: int8 ONNX 360.9 against 242.7 at 128
      tokens and 2153.7 against 1362.2 at 512, fp32 ONNX 965.4 against 543.0 at 128; only at 18 tokens
      in int8 ONNX did one thread win (72.4 against 82.6).

    The cut, 100M, is the geometric midpoint of the two measured sizes (nothing between them was measured).
    The cap, 4, bounds a guess: nothing above 2 cores was measured here, a guard shares its machine with the
    application it guards (often an LLM server), and at 2 threads the large model already gained 1.5× from 2×
    the cores at 128 tokens.
    """
    if model_parameters(manifest, artifact) < PARALLEL_PARAMETERS:
        return 1
    return min(physical_cores(), MAX_DEFAULT_THREADS)
