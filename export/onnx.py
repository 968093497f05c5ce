"""ONNX steps: optimum-onnx export with dynamic batch and sequence axes, ONNX Runtime dynamic int8."""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guard_sdk.errors import ExportError

if TYPE_CHECKING:
    import onnx
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)
_PROTOBUF_LIMIT = 2**31 - 1


def export_onnx(model: PreTrainedModel, out_path: Path, opset: int | None = None) -> Path:
    """Write ``model`` as one self-contained ONNX file (weights inline) at ``out_path``."""
    import onnx
    import torch
    from optimum.exporters.onnx import onnx_export_from_model

    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".onnx-") as scratch:
        # optimum's own validation is skipped: pipeline.py checks every artifact against PyTorch on
        # the bundle's texts and windows, which is the check the manifest records.
        with warnings.catch_warnings():
            # Known harmless, said once per export by torch's tracer: transformers builds the attention mask
            # with torch.tensor (a constant in the trace; it is the same for every input), and torch.onnx
            # deprecates a logging helper that optimum calls. Other tracer warnings (a branch on data, say) still
            # show; the parity check below is what guards the graph.
            warnings.filterwarnings("ignore", message="torch.tensor results are registered as constants",
                                    category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
            # optimum-onnx, not we, picks torch's TorchScript-based exporter; constraints.txt pins the pair.
            warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export",
                                    category=DeprecationWarning)
            onnx_export_from_model(model, scratch, task="text-classification", opset=opset, do_validation=False)
        produced = Path(scratch) / "model.onnx"
        if not produced.is_file():
            raise ExportError(f"optimum wrote no model.onnx for {type(model).__name__}")
        # optimum writes config.json beside the model; any other file is weights stored as external data.
        if any(p.name != "model.onnx" and p.suffix != ".json" for p in Path(scratch).iterdir()):
            # Weights were written as external data; fold them back into one file the bundle can hash.
            proto = onnx.load(str(produced), load_external_data=True)
            if proto.ByteSize() > _PROTOBUF_LIMIT:
                raise ExportError("the model is over 2 GB and cannot be one ONNX file; guard bundles hold one")
            onnx.save_model(proto, str(out_path), save_as_external_data=False)
        else:
            shutil.move(str(produced), out_path)
    return out_path


def _static_only_advice(record: logging.LogRecord) -> bool:
    """Drop ONNX Runtime's hint to pre-process for calibration; it concerns static quantization only."""
    return "pre-processing before quantization" not in record.getMessage()


def fold_weight_identities(model: onnx.ModelProto) -> int:
    """Point every consumer of ``Identity(initializer)`` at the initializer itself; how many were folded.

    The exporter writes a weight used twice (DeBERTa applies its query and key projections to the relative
    position embeddings too) as an Identity of the first. ONNX Runtime's quantizer only quantizes a MatMul
    whose weight is an initializer, so those copies stayed fp32: 48 of 1024x1024 in deberta-v3-large,
    200 MB of its int8 file.
    """
    initializers = {t.name for t in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    aliases = {n.output[0]: n.input[0] for n in model.graph.node
               if n.op_type == "Identity" and n.input[0] in initializers and n.output[0] not in outputs}
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in aliases:
                node.input[i] = aliases[name]
    keep = [n for n in model.graph.node if not (n.op_type == "Identity" and n.output[0] in aliases)]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return len(aliases)


def quantize_int8(fp32_path: Path, out_path: Path, per_channel: bool) -> dict[str, Any]:
    """Dynamic int8 (int8 weights, activations quantized at run time) through ONNX Runtime."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(fp32_path))
    folded = fold_weight_identities(model)
    root = logging.getLogger()
    root.addFilter(_static_only_advice)
    try:
        quantize_dynamic(model, out_path, per_channel=per_channel, weight_type=QuantType.QInt8)
    finally:
        root.removeFilter(_static_only_advice)
    return {"method": "onnxruntime.quantization.quantize_dynamic", "weights": "int8",
            "activations": "uint8, dynamic", "per_channel": per_channel, "embeddings": "uint8",
            "shared_weights_folded": folded}
