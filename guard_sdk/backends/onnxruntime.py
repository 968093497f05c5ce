"""ONNX Runtime on the CPU: runs model.onnx and model.int8.onnx."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from guard_sdk.errors import BundleError


class OnnxRuntimeBackend:
    """One InferenceSession; ``run`` may be called from several threads at once (ORT allows it)."""

    name = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None, output: str = "logits",
                 inputs: list[str] | None = None, requested: bool = True) -> None:
        """``requested`` does not matter here: each session has a pool of its own, so any count is honoured."""
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.threads = threads
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
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
