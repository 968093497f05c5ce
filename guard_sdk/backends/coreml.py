"""Core ML through coremltools: runs model.mlpackage (fp16) and its int8 or palettized variants, on macOS only.

coremltools can read and convert models anywhere, but prediction needs Apple's Core ML framework; on other
platforms ``guard_sdk.backends.open_backend`` refuses this backend before it is built.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from guard_sdk.backends import rows
from guard_sdk.errors import BundleError


class CoreMLBackend:
    """One MLModel on all compute units; its graph was exported at batch 1, so ``run`` predicts once per row."""

    name = "coreml"

    def __init__(self, source: Path | bytes, threads: int | None = None, output: str = "logits",
                 inputs: list[str] | None = None, requested: bool = True, where: Path | None = None) -> None:
        """``threads``, ``requested`` and ``where`` are part of every backend's signature; Core ML schedules its
        own threads and loads a package folder only from disk (``bundle.verified_path``)."""
        import coremltools as ct

        if isinstance(source, bytes):
            raise BundleError(f"{where}: a Core ML artifact is an .mlpackage folder, not a file", where)
        path = source
        self.threads = None

        try:
            self._model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.ALL)
        except Exception as e:  # coremltools raises plain Exception and RuntimeError subclasses alike
            raise BundleError(f"{path}: Core ML cannot load it as a model package ({e})", path) from e
        spec = self._model.get_spec().description
        names = [i.name for i in spec.input]
        if inputs is not None and sorted(names) != sorted(inputs):
            raise BundleError(f"{path}: the model takes inputs {names}, guard.json says {inputs}", path)
        self._names, self._output = names, output

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        out = []
        for row in rows(inputs, self._names):
            result = self._model.predict({n: a.astype(np.int32) for n, a in zip(self._names, row)})
            out.append(np.asarray(result[self._output], dtype=np.float32).reshape(1, -1))
        return np.concatenate(out)
