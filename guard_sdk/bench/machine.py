"""The machine a benchmark ran on, as a record: processor, cores, instruction-set flags, library versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata

from guard_sdk.backends import usable_cpus

# The flags that decide which kernels ONNX Runtime, XNNPACK and PyTorch pick on x86 and Arm.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni",
             "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp", "sve", "sve2", "i8mm", "bf16")
LIBRARIES = ("guard-sdk", "numpy", "onnxruntime", "tokenizers", "executorch", "coremltools", "torch",
             "transformers", "optimum-onnx")


def _cpuinfo() -> dict[str, str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            pairs = (line.split(":", 1) for line in f if ":" in line)
            info: dict[str, str] = {}
            for key, value in pairs:
                info.setdefault(key.strip(), value.strip())
            return info
    except OSError:  # not Linux: the platform module says less, but something
        return {}


def machine() -> dict[str, object]:
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu": info.get("model name") or platform.processor() or platform.machine(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(usable_cpus()),
        "arch": platform.machine(),
        "isa_flags": [f for f in ISA_FLAGS if f in flags],
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": versions,
    }
