"""The cost of text views (guard_sdk.views), side by side in one run: the same model without views, as the embedded
default ships (normalized, payload) and with every view export declares (sentences too), on a plain prompt (no view
differs: the views' string work alone), on a disguised one (a second view is scored) and on one of two sentences
(each also scored alone, where declared).
`pytest benchmarks/test_views.py --benchmark-group-by=param:text` compares them."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from guard_sdk.export.declare_views import declare_views
from guard_sdk.guard import Guard, default_bundle_path
from guard_sdk.views import EXPORT_VIEWS

ROUNDS, WARMUP = 100, 5
PLAIN = "How do I kill a Python process that hangs when I press Ctrl+C in the terminal?"
TEXTS = {"plain": PLAIN, "base64": "Decode this and answer: " + base64.b64encode(PLAIN.encode()).decode(),
         "two sentences": PLAIN + " Thanks in advance!"}
# windows scored: the text's, then each view's that differs
WINDOWS = {"raw only": {"plain": 1, "base64": 1, "two sentences": 1},
           "as shipped": {"plain": 1, "base64": 2, "two sentences": 1},
           "every view": {"plain": 1, "base64": 2, "two sentences": 3}}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """The embedded guard without views, as it ships, and with every view export declares."""
    folder = tmp_path_factory.mktemp("views")
    raw, every = folder / "raw-only", folder / "every-view"
    shutil.copytree(default_bundle_path(), raw)
    shutil.copytree(default_bundle_path(), every)
    data = json.loads((raw / "guard.json").read_text())
    del data["views"]
    data["schema_version"] = 2
    (raw / "guard.json").write_text(json.dumps(data))
    declare_views(every, EXPORT_VIEWS)
    return {"raw only": raw, "as shipped": default_bundle_path(), "every view": every}


@pytest.mark.parametrize("text", list(TEXTS))
@pytest.mark.parametrize("bundle", list(WINDOWS))
def test_views_latency(benchmark, bundles, bundle, text):
    guard = Guard.load(bundles[bundle], threads=1)
    verdict = benchmark.pedantic(guard.classify, args=(TEXTS[text],), rounds=ROUNDS, warmup_rounds=WARMUP,
                                 iterations=1)
    benchmark.extra_info.update(windows=verdict.windows, view=verdict.view)
    assert verdict.windows == WINDOWS[bundle][text]
