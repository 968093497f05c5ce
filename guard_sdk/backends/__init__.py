"""Backends run one exported artifact. Each format has one; its library is imported only when used."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from guard_sdk.errors import BackendUnavailableError, UnknownFormatError


class Backend(Protocol):
    """Runs padded model inputs and returns the logits, shape (batch, labels)."""

    name: str

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


def open_backend(backend: str, path: Path, threads: int | None, output: str, inputs: Sequence[str]) -> Backend:
    """Instantiate ``backend`` on the artifact at ``path``, whose graph takes ``inputs`` in that order."""
    info = BACKENDS[backend]
    check_platform(backend)
    module_name, class_name = info.target.split(":")
    try:
        module = import_module(module_name)
    except ImportError as e:
        raise BackendUnavailableError(
            f"backend {backend!r} needs a library that is not installed ({e.name}); pip install '{info.install}'"
        ) from e
    return getattr(module, class_name)(path, threads=threads, output=output, inputs=list(inputs))


def rows(inputs: dict[str, np.ndarray], names: Sequence[str]) -> list[list[np.ndarray]]:
    """Split a batch into single-row input lists in ``names`` order, for graphs exported at batch 1."""
    batch = len(next(iter(inputs.values())))
    return [[inputs[name][i : i + 1] for name in names] for i in range(batch)]
