"""Backends run one exported artifact. Each format has one; its library is imported only when used."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Protocol

import numpy as np

from guard_sdk.errors import BackendUnavailableError, UnknownFormatError


class Backend(Protocol):
    """Runs padded model inputs and returns the logits, shape (batch, labels)."""

    name: str

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray: ...


# backend name -> (artifact format it runs, module:class, pip extra that brings its library)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "onnxruntime": ("onnx", "guard_sdk.backends.onnxruntime:OnnxRuntimeBackend", "guard-sdk"),
}
# The order "auto" tries backends in: fastest first on this platform.
AUTO_ORDER: tuple[str, ...] = ("onnxruntime",)


def backend_format(backend: str) -> str:
    """The artifact format a backend runs; refuse an unknown backend with the known ones."""
    if backend not in BACKENDS:
        known = ", ".join(["auto", *BACKENDS])
        raise UnknownFormatError(f"unknown backend {backend!r}; choose one of: {known}")
    return BACKENDS[backend][0]


def open_backend(backend: str, path: Path, threads: int | None, output: str) -> Backend:
    """Instantiate ``backend`` on the artifact at ``path``."""
    fmt, target, extra = BACKENDS[backend]
    module_name, class_name = target.split(":")
    try:
        module = import_module(module_name)
    except ImportError as e:
        raise BackendUnavailableError(
            f"backend {backend!r} needs a library that is not installed ({e.name}); pip install '{extra}'"
        ) from e
    return getattr(module, class_name)(path, threads=threads, output=output)
