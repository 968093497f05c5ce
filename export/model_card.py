"""MODEL_CARD.md, written from the manifest so that its figures are the ones export measured.

Built as SetFit builds its cards: huggingface_hub's ``ModelCard`` from a Jinja template
(``model_card_template.md``) and ``ModelCardData``, so the YAML metadata (library, pipeline, tags and the
measured quality as model-index results) is what the Hub and other tools read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from guard_sdk.bundle import Artifact, Manifest
from guard_sdk.licences import builtin_of, licence_of, non_commercial

if TYPE_CHECKING:
    from huggingface_hub import ModelCardData

TEMPLATE = Path(__file__).with_name("model_card_template.md")
CARD_NAME = "MODEL_CARD.md"
# The figures of an evaluation report (guard_sdk.training.evaluate.report) that go into the metadata, by the
# names model-index gives them.
METRICS = {"f1": "F1", "auprc": "AUPRC", "precision": "Precision", "recall": "Recall", "fpr": "False-positive rate"}


class EvaluationTable(NamedTuple):
    """One measured table: its title, the report's overall figures (for the metadata) and the table itself,
    rendered by training (export does not import training)."""

    title: str
    overall: dict[str, Any]
    markdown: str


def _artifact_row(a: Artifact) -> str:
    p = a.parity
    if not p.measured or p.max_abs_diff is None or p.agreement is None:
        return (f"| `{a.path}` | {a.format} | {a.precision} | {a.bytes / 1e6:.1f} MB | not measured | not measured "
                f"| spec checked: {a.spec['operations'] if a.spec else '?'} operations, "
                f"{a.spec['compressed_weights'] if a.spec else '?'} compressed weight tensors, "
                f"{a.spec['deployment_target'] if a.spec else '?'} |")
    sampled = f" ({p.sample_texts} from the parity sample)" if p.sample_texts else ""
    counted = (f"; decisions compared on the {p.counted_windows} further than the tolerance from the threshold"
               if p.counted_windows is not None else "")
    return (f"| `{a.path}` | {a.format} | {a.precision} | {a.bytes / 1e6:.1f} MB | {p.max_abs_diff:.2e} | "
            f"{100 * p.agreement:.1f}% | {p.windows} windows of {p.texts} texts{sampled}{counted} |")


def licence_section(training: dict[str, Any]) -> str:
    """The licence of each source the model trained on, and a warning where one forbids commercial use: a model
    carries its training data's terms, so its card must say which."""
    train = training.get("data", {}).get("train", {})
    by_base = {builtin_of(source): licence_of(source) for source in sorted(train)}
    lines = ["Licences of the training sources (as the data folder's README gives them; the model carries their "
             "terms):", "", "| source | licence |", "|---|---|"]
    lines += [f"| `{base}` | {licence} |" for base, licence in by_base.items()]
    banned = non_commercial(train)
    if banned:
        lines += ["", f"**Not for commercial use**: trained on {', '.join(f'`{b}`' for b in banned)}, whose licences "
                  "(CC BY-NC, CC BY-NC-SA) forbid it."]
    return "\n".join(lines) + "\n"


def _slug(title: str) -> str:
    """A dataset id for a table's title: model-index groups results by it, so each table keeps its own."""
    return "-".join(re.findall(r"[a-z0-9]+", title.lower())) or "evaluation"


def card_data(manifest: Manifest, evaluation: list[EvaluationTable]) -> ModelCardData:
    """The card's YAML metadata: what the bundle is, and every measured figure as a model-index result."""
    from huggingface_hub import EvalResult, ModelCardData

    formats = sorted({a.format for a in manifest.artifacts})
    results = [EvalResult(task_type="text-classification", task_name="safety guard (P(unsafe) >= threshold)",
                          dataset_type=_slug(table.title), dataset_name=table.title, metric_type=key, metric_name=name,
                          metric_value=float(table.overall[key]))
               for table in evaluation for key, name in METRICS.items() if table.overall.get(key) is not None]
    return ModelCardData(model_name=manifest.name, library_name="guard-sdk", pipeline_tag="text-classification",
                         tags=["guard-sdk", "safety", "guard", *formats], eval_results=results or None)


def render_model_card(manifest: Manifest, evaluation: list[EvaluationTable] | None = None, note: str = "") -> str:
    from huggingface_hub import ModelCard

    src = manifest.source
    card = ModelCard.from_template(
        card_data(manifest, evaluation or []), template_path=str(TEMPLATE), model_name=manifest.name,
        guard_sdk_version=src.get("versions", {}).get("guard-sdk", "?"), checkpoint=src.get("checkpoint"),
        model_type=src.get("model_type"), parameters=src.get("parameters", 0), labels=", ".join(manifest.labels),
        threshold=manifest.threshold, max_length=manifest.max_length, window_overlap=manifest.text.window_overlap,
        created=src.get("created"), artifact_rows=[_artifact_row(a) for a in manifest.artifacts],
        unmeasured=sorted({a.parity.note for a in manifest.artifacts if not a.parity.measured}),
        training=src.get("training"), evaluation=evaluation or [], note=note,
        licences=licence_section(src["training"]) if src.get("training") else "")
    return str(card)


def write_model_card(bundle_dir: Path, manifest: Manifest, evaluation: list[EvaluationTable] | None = None,
                     note: str = "") -> Path:
    """MODEL_CARD.md in ``bundle_dir``; ``evaluation``: the tables training measured on the bundle, if any."""
    path = Path(bundle_dir) / CARD_NAME
    path.write_text(render_model_card(manifest, evaluation, note), encoding="utf-8")
    return path
