"""MODEL_CARD.md, written from the manifest so that its figures are the ones export measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from guard_sdk.bundle import Artifact, Manifest


def _training_section(training: dict[str, Any] | None) -> str:
    if not training:
        return ("This card records what export knows. Training data and measured quality are added by the\n"
                "training commands that produce the checkpoint (`guard-sdk finetune`).\n")
    rows = "\n".join(
        f"| {split} | `{source}` | {counts.get('unsafe', 0):,} | {counts.get('safe', 0):,} |"
        for split, sources in training["data"].items() for source, counts in sources.items()
    )
    return f"""- Recipe: `{training["recipe"]}`, base model `{training["base_model"]}`
- Threshold: {training["threshold"]:.4g} ({training["threshold_rule"]})
- Rebuild: `{training["command"]}`

Rows per split and source, after near-duplicate removal (a prompt and its twins from other sources
always share a split; holdout sources are never trained on, and their twins are removed from train and dev):

| split | source | unsafe | safe |
|---|---|---|---|
{rows}
"""


def _evaluation_section(evaluation: dict[str, dict[str, Any]] | None, note: str) -> str:
    if not evaluation:
        return ""
    from guard_sdk.training.evaluate import to_markdown

    tables = "\n".join(to_markdown(result, name) for name, result in evaluation.items())
    return f"""
## Measured quality

Tables named after an artifact were measured through the guard-sdk runtime on this bundle, at its
threshold. FPR is the share of safe rows flagged; "–" marks a figure a subset cannot have (recall where
no row is unsafe). {note}

{tables}"""


def _artifact_row(a: Artifact) -> str:
    p = a.parity
    if not p.measured:
        return (f"| `{a.path}` | {a.format} | {a.precision} | {a.bytes / 1e6:.1f} MB | not measured | not measured "
                f"| spec checked: {a.spec['operations'] if a.spec else '?'} operations, "
                f"{a.spec['compressed_weights'] if a.spec else '?'} compressed weight tensors, "
                f"{a.spec['deployment_target'] if a.spec else '?'} |")
    sampled = f" ({p.sample_texts} from the parity sample)" if p.sample_texts else ""
    counted = (f"; decisions compared on the {p.counted_windows} further than the tolerance from the threshold"
               if p.counted_windows is not None else "")
    return (f"| `{a.path}` | {a.format} | {a.precision} | {a.bytes / 1e6:.1f} MB | {p.max_abs_diff:.2e} | "
            f"{100 * p.agreement:.1f}% | {p.windows} windows of {p.texts} texts{sampled}{counted} |")


def render_model_card(manifest: Manifest, evaluation: dict[str, dict[str, Any]] | None = None, note: str = "") -> str:
    src = manifest.source
    rows = "\n".join(_artifact_row(a) for a in manifest.artifacts)
    notes = sorted({a.parity.note for a in manifest.artifacts if not a.parity.measured})
    unmeasured = "".join(f"\nNot measured: {n}.\n" for n in notes)
    return f"""# {manifest.name}

A guard bundle written by `guard-sdk export` (guard-sdk {src.get("versions", {}).get("guard-sdk", "?")}).

- Source checkpoint: `{src.get("checkpoint")}` ({src.get("model_type")}, {src.get("parameters", 0):,} parameters)
- Labels: {", ".join(manifest.labels)}; unsafe when P(unsafe) >= {manifest.threshold:.4g}
- Max length: {manifest.max_length} tokens; longer inputs are scored in windows overlapping by
  {manifest.text.window_overlap} tokens and the most unsafe window decides
- Created: {src.get("created")}

## Artifacts and parity with PyTorch

Each artifact was scored against the PyTorch model on the same windows before it was written
(fixed texts: prompts and prompt+response pairs, short and at max length; and the rows of a labelled parity
sample where the export was given one). Decision agreement counts only windows whose PyTorch score lies further
than the artifact's tolerance from the threshold: nearer ones may flip under any difference the bound allows.

| file | format | precision | size | max abs diff P(unsafe) | decision agreement | on |
|---|---|---|---|---|---|---|
{rows}
{unmeasured}
## Training data

{_training_section(src.get("training"))}{_evaluation_section(evaluation, note)}"""


def write_model_card(bundle_dir: Path, manifest: Manifest, evaluation: dict[str, dict[str, Any]] | None = None,
                     note: str = "") -> Path:
    """MODEL_CARD.md; ``evaluation`` maps a table title to a report of guard_sdk.training.evaluate."""
    path = Path(bundle_dir) / "MODEL_CARD.md"
    path.write_text(render_model_card(manifest, evaluation, note), encoding="utf-8")
    return path
