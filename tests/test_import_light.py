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


def test_loading_and_classifying_writes_nothing_outside_the_bundle(tmp_path):
    """ONNX Runtime's telemetry is off: a fresh process under an empty home leaves it empty."""
    import os

    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "TMPDIR": str(home)}
    code = ("import os, guard_sdk\n"
            "g = guard_sdk.Guard.load()\n"
            "print(g.classify('How do I bake bread?').label, os.environ.get('ORT_DISABLE_TELEMETRY'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                         cwd=tmp_path).stdout
    assert out.split() == ["safe", "1"]
    assert list(home.rglob("*")) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["home"]
