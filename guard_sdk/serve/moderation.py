"""OpenAI's moderation schema from our verdicts: each of its 13 categories scored as the highest of ours that
cover it (guard_sdk.categories.OPENAI_MODERATION), flagged where one of those is a violation under the policy."""

from __future__ import annotations

import uuid
from typing import Any

from guard_sdk.categories import OPENAI_MODERATION
from guard_sdk.guard import Verdict


def moderation_result(verdict: Verdict) -> dict[str, Any]:
    """One entry of ``results``: ``flagged`` is the verdict; a category of a bundle without a category head scores
    0 and is never flagged (``flagged`` alone then says unsafe)."""
    scores = {name: max((verdict.categories.get(c, 0.0) for c in ours), default=0.0)
              for name, ours in OPENAI_MODERATION.items()}
    flagged = {name: any(c in verdict.violations for c in ours) for name, ours in OPENAI_MODERATION.items()}
    return {"flagged": verdict.unsafe, "categories": flagged, "category_scores": scores,
            "category_applied_input_types": {name: ["text"] for name in OPENAI_MODERATION}}


def moderation_response(model: str, verdicts: list[Verdict]) -> dict[str, Any]:
    return {"id": f"modr-{uuid.uuid4().hex}", "model": model, "results": [moderation_result(v) for v in verdicts]}
