"""The runtime stays light: importing guard_sdk (and its CLI) brings in no torch, transformers or executorch."""

import subprocess
import sys

HEAVY = ("torch", "transformers", "executorch", "optimum", "coremltools")


def test_import_guard_sdk_imports_no_heavy_library():
    code = (
        "import sys, guard_sdk, guard_sdk.cli, guard_sdk.bundle, guard_sdk.backends.onnxruntime\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
