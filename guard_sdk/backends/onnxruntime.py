"""ONNX Runtime on the CPU: runs model.onnx and model.int8.onnx, from the bytes the bundle check read.

ONNX Runtime's telemetry (a device id and an event database under ~/.cache/Microsoft) is turned off before it is
imported: a guard writes nothing outside its bundle and the folders it is told to write.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from guard_sdk.errors import BundleError

os.environ["ORT_DISABLE_TELEMETRY"] = "1"  # read as it loads; the call below stops an earlier import's events
import onnxruntime as ort  # noqa: E402

ort.disable_telemetry_events()


class OnnxRuntimeBackend:
    """One InferenceSession; ``run`` may be called from several threads at once (ORT allows it)."""

    name = "onnxruntime"

    def __init__(self, source: Path | bytes, threads: int | None = None, output: str = "logits",
                 inputs: list[str] | None = None, requested: bool = True, where: Path | None = None) -> None:
        """``requested`` does not matter here: each session has a pool of its own, so any count is honoured."""
        path = where if isinstance(source, bytes) else source
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.threads = threads
        try:
            model = source if isinstance(source, bytes) else str(source)
            self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own unexported exception types for a bad model file
            raise BundleError(f"{path}: ONNX Runtime cannot load it ({e})", path) from e
        self._output = output
        self.input_names = [i.name for i in self._session.get_inputs()]
        outputs = [o.name for o in self._session.get_outputs()]
        if inputs is not None and sorted(self.input_names) != sorted(inputs):
            raise BundleError(f"{path}: the model takes inputs {self.input_names}, guard.json says {inputs}", path)
        if output not in outputs:
            raise BundleError(f"{path}: the model has no output {output!r} (it has {outputs})", path)

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self._session.run([self._output], inputs)[0]
