"""ExecuTorch steps: PT2E quantization through the XNNPACK quantizer, lowering to XNNPACK, the .pte file.

int8 is 8-bit dynamic activations with 8-bit per-channel weights on every linear layer; int4 keeps the
activations and takes 4-bit per-channel weights. With ``embeddings`` the embedding tables are stored as int8
rows too (ExecuTorch's quantized ``embedding_byte`` kernel): for the 128k-row DeBERTa-v3 vocabulary that
table is most of the file.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guard_sdk.backends.executorch import quiet_executorch
from guard_sdk.export.graph import dynamic_shapes, example_inputs

if TYPE_CHECKING:
    from torch.export import ExportedProgram

WEIGHT_RANGE = {"int8": (-127, 127), "int4": (-8, 7)}


def _integer_safe_quantizer(weight_range: tuple[int, int]) -> Any:
    """The XNNPACK quantizer, minus one bug: before annotating, it turns every scalar operand of an ``add``
    or ``mul`` into a *float* tensor constant, whatever the other operand's dtype. DeBERTa adds an int to
    its int64 relative positions (``relative_pos + att_span``), so the sum turns float32 and the ``gather``
    it indexes fails ("Expected dtype int32/int64 for index"). Integer arithmetic is never quantized, so
    those nodes are hidden from that pass and put back unchanged."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    scalar_ops = (torch.ops.aten.add.Tensor, torch.ops.aten.mul.Tensor)

    class IntegerSafeXNNPACKQuantizer(XNNPACKQuantizer):
        def transform_for_annotation(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            integer = [n for n in model.graph.nodes if n.op == "call_function" and n.target in scalar_ops
                       and not n.meta["val"].dtype.is_floating_point]
            targets = [n.target for n in integer]
            for node in integer:
                node.target = torch.ops.aten.sub.Tensor  # a target the pass does not touch
            try:
                return super().transform_for_annotation(model)
            finally:
                for node, target in zip(integer, targets):
                    node.target = target

    low, high = weight_range
    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True, weight_qmin=low,
                                               weight_qmax=high)
    return IntegerSafeXNNPACKQuantizer().set_global(config)


def quantize(program: ExportedProgram, inputs: list[str], max_length: int, precision: str,
             embeddings: bool) -> ExportedProgram:
    """PT2E: annotate, observe one example (dynamic activations need no calibration set), convert, re-export."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import ComposableQuantizer
    from torchao.quantization.pt2e.quantizer.embedding_quantizer import EmbeddingQuantizer

    quantizers = [_integer_safe_quantizer(WEIGHT_RANGE[precision])]
    if embeddings:
        quantizers.insert(0, EmbeddingQuantizer())
    example = example_inputs(inputs, max_length)
    prepared = prepare_pt2e(program.module(), ComposableQuantizer(quantizers))
    with torch.no_grad():
        prepared(*example)
        converted = convert_pt2e(prepared)
        return torch.export.export(converted, example, dynamic_shapes=dynamic_shapes(inputs, max_length),
                                   strict=False)


def write_pte(program: ExportedProgram, path: Path) -> None:
    """``to_edge_transform_and_lower`` onto XNNPACK, then ``to_executorch``; quantized embedding lookups are
    fused into ``embedding_byte`` by the quant-fusion pass. Lowering edits the program it is given, so it
    works on a copy: the caller's program still serves the next precision and Core ML."""
    with quiet_executorch():
        import executorch.kernels.quantized  # noqa: F401  registers embedding_byte for the fusion pass
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower

        edge = to_edge_transform_and_lower(copy.deepcopy(program), partitioner=[XnnpackPartitioner()])
        result = edge.to_executorch(ExecutorchBackendConfig(do_quant_fusion_and_const_prop=True))
    with open(path, "wb") as f:
        result.write_to_file(f)


def quantization_record(precision: str, embeddings: bool) -> dict[str, Any]:
    return {"method": "torchao PT2E, XNNPACKQuantizer (dynamic, symmetric)",
            "weights": f"{precision}, per channel", "activations": "int8, dynamic",
            "embeddings": "int8 per row (embedding_byte)" if embeddings else "fp32"}
