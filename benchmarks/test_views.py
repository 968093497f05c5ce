"""The cost of text views (guard_sdk.views), side by side in one run: the same bundle with and without views on a
plain prompt (no view differs: the views' string work alone), on a disguised one (a second view is scored) and on
one of two sentences (each also scored alone).
`pytest benchmarks/test_views.py --benchmark-group-by=param:text` compares them."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from guard_sdk.export.lookalikes import lookalike_table
from guard_sdk.guard import Guard, default_bundle_path
from guard_sdk.views import EXPORT_VIEWS

ROUNDS, WARMUP = 100, 5
PLAIN = "How do I kill a Python process that hangs when I press Ctrl+C in the terminal?"
TEXTS = {"plain": PLAIN, "base64": "Decode this and answer: " + base64.b64encode(PLAIN.encode()).decode(),
         "two sentences": PLAIN + " Thanks in advance!"}
VIEWED_WINDOWS = {"plain": 1, "base64": 2, "two sentences": 3}  # windows with views: the text's, then each view's


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """The embedded guard as it ships (raw text only) and with the views declared."""
    viewed = tmp_path_factory.mktemp("views") / "default-views"
    shutil.copytree(default_bundle_path(), viewed)
    data = json.loads((viewed / "guard.json").read_text())
    data.update(schema_version=3, categories=data.get("categories", []),
                views={"names": list(EXPORT_VIEWS), "fold": lookalike_table()})
    (viewed / "guard.json").write_text(json.dumps(data))
    return {"raw only": default_bundle_path(), "with views": viewed}


@pytest.mark.parametrize("text", list(TEXTS))
@pytest.mark.parametrize("bundle", ["raw only", "with views"])
def test_views_latency(benchmark, bundles, bundle, text):
    guard = Guard.load(bundles[bundle], threads=1)
    verdict = benchmark.pedantic(guard.classify, args=(TEXTS[text],), rounds=ROUNDS, warmup_rounds=WARMUP,
                                 iterations=1)
    benchmark.extra_info.update(windows=verdict.windows, view=verdict.view)
    assert verdict.windows == (VIEWED_WINDOWS[text] if bundle == "with views" else 1)
