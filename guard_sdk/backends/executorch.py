"""ExecuTorch's Python runtime (pybindings, XNNPACK delegate): runs model.pte, model.int8.pte, model.int4.pte.

The same .pte runs in the Android demo through ExecuTorch's Android library; here it serves parity checks,
benchmarks and machines without ONNX Runtime. ExecuTorch's Python runtime takes and returns torch tensors, so
this backend (only) imports torch.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from guard_sdk.backends import rows
from guard_sdk.errors import BackendUnavailableError, BundleError

_loaded_any = False  # whether this process has loaded an ExecuTorch program (the pool is then fixed)


# What ExecuTorch and its pytree helpers say on every import and lowering that tells a guard-sdk user nothing:
# its own code's use of importlib.resources' legacy API, its notice that the Python runtime API is experimental,
# and torch's deprecation of a pytree check inside deepcopy. Anything else still shows.
_KNOWN_HARMLESS = ("open_text is deprecated", "read_text is deprecated", "read_binary is deprecated",
                   "This API is experimental", r"`isinstance\(treespec, LeafSpec\)` is deprecated")


@contextlib.contextmanager
def quiet_executorch() -> Iterator[None]:
    """Import and run ExecuTorch without its known-harmless warnings (``_KNOWN_HARMLESS``)."""
    with warnings.catch_warnings():
        for message in _KNOWN_HARMLESS:
            warnings.filterwarnings("ignore", message=message)
        yield


def _size_thread_pool(portable_lib: Any, threads: int | None, requested: bool = True) -> int:
    """Size the process's pool to ``threads`` before the first program loads, and return its size.

    Once a program has loaded, the pool is fixed: a count the caller asked for must match it, while the
    runtime's default (``requested`` False) yields to it, since resizing would hang the earlier guard.
    """
    global _loaded_any
    current = portable_lib._threadpool_get_thread_count()
    if threads is not None and threads != current:
        if not _loaded_any:
            portable_lib._unsafe_reset_threadpool(threads)  # the only thread knob the pybindings expose
        elif requested:
            raise BackendUnavailableError(
                f"ExecuTorch's Python runtime has one thread pool per process, already sized to {current} threads "
                f"by an earlier ExecuTorch guard; load this one with threads={current} or threads=None"
            )
    _loaded_any = True
    return portable_lib._threadpool_get_thread_count()


class ExecuTorchBackend:
    """One loaded ``forward`` method. Its graph was exported at batch 1, so ``run`` calls it once per row.

    A method owns its planned memory, so calls are serialised with a lock (a Guard stays safe to share between
    threads). The pybindings have one XNNPACK thread pool per process, and a method loaded before the pool
    is resized hangs on its next call; so ``threads`` sizes the pool once, before the first program loads,
    and a later backend must ask for the same size (or leave the count to the runtime's default, which yields).
    """

    name = "executorch"

    def __init__(self, source: Path | bytes, threads: int | None = None, output: str = "logits",
                 inputs: list[str] | None = None, requested: bool = True, where: Path | None = None) -> None:
        import torch

        path = where if isinstance(source, bytes) else source
        with quiet_executorch():
            import executorch.kernels.quantized  # noqa: F401  registers the int8 embedding kernel a .pte may call
            from executorch.extension.pybindings import portable_lib
            from executorch.runtime import Runtime

        self.threads = _size_thread_pool(portable_lib, threads, requested)
        try:
            program = Runtime.get().load_program(source if isinstance(source, bytes) else Path(source))
            # The program reads from the buffer it was loaded from, without a copy: both must outlive the method.
            self._source, self._program = source, program
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
        self._lock = threading.Lock()

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        out = []
        for row in rows(inputs, self._names):
            if row[0].shape[-1] > self._max_length:
                raise BundleError(f"the program takes at most {self._max_length} tokens, got {row[0].shape[-1]}")
            tensors = [self._torch.from_numpy(np.ascontiguousarray(a)) for a in row]
            with self._lock:
                result = self._method.execute(tensors)
            out.append(result[0].float().numpy())
        return np.concatenate(out)
