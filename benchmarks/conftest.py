"""pytest-benchmark suites over guard bundles: `pytest benchmarks/ [--bench-bundle DIR ...] --benchmark-json F`.

Every case runs in this one process, as pytest-benchmark does; `guard-sdk bench` measures each configuration
in a process of its own, with load time and memory, and is the one whose figures RESULTS.md quotes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from guard_sdk.backends import BACKENDS, runs_here
from guard_sdk.bench.run import LENGTHS, THREADS
from guard_sdk.bundle import read_manifest
from guard_sdk.guard import default_bundle_path


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bench-bundle", action="append", default=None,
                     help="a guard bundle to benchmark; repeat for several (default: the embedded default guard)")


def _artifacts(bundles: list[str]) -> list[tuple[str, str, str]]:
    """(bundle, backend, precision) for every artifact a backend runs on this platform."""
    return [(bundle, backend, a.precision) for bundle in bundles for a in read_manifest(Path(bundle)).artifacts
            for backend, info in BACKENDS.items() if info.format == a.format and runs_here(backend)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    bundles = metafunc.config.getoption("--bench-bundle") or [str(default_bundle_path())]
    if "artifact" in metafunc.fixturenames:
        cases = _artifacts(bundles)
        metafunc.parametrize("artifact", cases, ids=[f"{Path(b).name}-{k}-{p}" for b, k, p in cases])
    if "tokens" in metafunc.fixturenames:
        metafunc.parametrize("tokens", LENGTHS)
    if "threads" in metafunc.fixturenames:  # None: threads unset, the runtime's default
        metafunc.parametrize("threads", THREADS, ids=["default" if n is None else str(n) for n in THREADS])
