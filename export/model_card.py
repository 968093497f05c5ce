"""MODEL_CARD.md, written from the manifest so that its figures are the ones export measured."""

from __future__ import annotations

from pathlib import Path

from guard_sdk.bundle import Manifest


def render_model_card(manifest: Manifest) -> str:
    src = manifest.source
    rows = "\n".join(
        f"| `{a.path}` | {a.format} | {a.precision} | {a.bytes / 1e6:.1f} MB | {a.parity.max_abs_diff:.2e} | "
        f"{100 * a.parity.agreement:.1f}% | {a.parity.windows} windows of {a.parity.texts} texts |"
        for a in manifest.artifacts
    )
    return f"""# {manifest.name}

A guard bundle written by `guard-sdk export` (guard-sdk {src.get("versions", {}).get("guard-sdk", "?")}).

- Source checkpoint: `{src.get("checkpoint")}` ({src.get("model_type")}, {src.get("parameters", 0):,} parameters)
- Labels: {", ".join(manifest.labels)}; unsafe when P(unsafe) >= {manifest.threshold}
- Max length: {manifest.max_length} tokens; longer inputs are scored in windows overlapping by
  {manifest.text.window_overlap} tokens and the most unsafe window decides
- Created: {src.get("created")}

## Artifacts and parity with PyTorch

Each artifact was scored against the PyTorch model on the same windows before it was written
(fixed texts: prompts and prompt+response pairs, short and at max length).

| file | format | precision | size | max abs diff P(unsafe) | decision agreement | on |
|---|---|---|---|---|---|---|
{rows}

## Training data and quality

This card records what export knows. Training data and measured quality are added by the training
commands that produce the checkpoint.
"""


def write_model_card(bundle_dir: Path, manifest: Manifest) -> Path:
    path = bundle_dir / "MODEL_CARD.md"
    path.write_text(render_model_card(manifest), encoding="utf-8")
    return path
