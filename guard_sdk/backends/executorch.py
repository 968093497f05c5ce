"""ExecuTorch's Python runtime (pybindings, XNNPACK delegate): runs model.pte, model.int8.pte, model.int4.pte.

The same .pte runs in the Android demo through ExecuTorch's Android library; here it serves parity checks,
benchmarks and machines without ONNX Runtime. ExecuTorch's Python runtime takes and returns torch tensors, so
this backend (only) imports torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from guard_sdk.backends import rows
from guard_sdk.errors import BundleError


class ExecuTorchBackend:
    """One loaded ``forward`` method. Its graph was exported at batch 1, so ``run`` calls it once per row."""

    name = "executorch"

    def __init__(self, path: Path, threads: int | None = None, output: str = "logits",
                 inputs: list[str] | None = None) -> None:
        import executorch.kernels.quantized  # noqa: F401  registers the int8 embedding kernel a .pte may call
        import torch
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        if threads is not None:
            # The pybindings' XNNPACK threadpool is one per process; this is the only knob they expose.
            portable_lib._unsafe_reset_threadpool(threads)
        try:
            program = Runtime.get().load_program(Path(path))
            self._method = program.load_method("forward")
        except (RuntimeError, ValueError) as e:
            raise BundleError(f"{path}: ExecuTorch cannot load it as a program ({e})", path) from e
        meta = self._method.metadata
        count = meta.num_inputs()
        if inputs is not None and count != len(inputs):
            raise BundleError(f"{path}: the program takes {count} inputs, guard.json lists {len(inputs)}: {inputs}",
                              path)
        self._names = inputs or []
        self._max_length = meta.input_tensor_meta(0).sizes()[-1]
        self._torch = torch

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        out = []
        for row in rows(inputs, self._names):
            if row[0].shape[-1] > self._max_length:
                raise BundleError(f"the program takes at most {self._max_length} tokens, got {row[0].shape[-1]}")
            result = self._method.execute([self._torch.from_numpy(np.ascontiguousarray(a)) for a in row])
            out.append(result[0].float().numpy())
        return np.concatenate(out)
