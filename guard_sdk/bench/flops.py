"""FLOPs of one model call, counted on the ONNX graph, so each benchmark row can say how far its achieved
GFLOP/s sits from the machine's peak. Only matrix products (MatMul, MatMulInteger, Gemm) are counted, 2 per
multiply-add: they are over 95% of an encoder's work. Shapes come from onnxruntime's symbolic shape
inference, which sees through the quantized and fused operators that onnx's own inference stops at."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

MATMULS = ("MatMul", "MatMulInteger")


@lru_cache(maxsize=64)
def matmul_flops(path: str, tokens: int, batch: int = 1) -> int | None:
    """FLOPs of the graph at ``path`` on inputs of ``batch`` × ``tokens``; None where the onnx package is
    missing (guard-sdk[export]) or a product's shape cannot be inferred."""
    try:
        import onnx
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
    except ImportError:
        return None
    model = onnx.load(path)
    for graph_input in model.graph.input:
        for dim, value in zip(graph_input.type.tensor_type.shape.dim, (batch, tokens)):
            dim.ClearField("dim_param")
            dim.dim_value = value
    model = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    graph = model.graph
    shapes: dict[str, list[int | None]] = {
        v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
        for v in [*graph.value_info, *graph.input, *graph.output]}
    shapes |= {i.name: list(i.dims) for i in graph.initializer}
    total = 0
    for node in graph.node:
        if node.op_type not in (*MATMULS, "Gemm"):
            continue
        a, b = _known(shapes.get(node.input[0])), _known(shapes.get(node.input[1]))
        if a is None or b is None:
            return None
        if node.op_type == "Gemm":  # 2-D, either side possibly transposed
            flags = {attr.name: attr.i for attr in node.attribute}
            (m, k), n = (a[::-1] if flags.get("transA") else a), (b[0] if flags.get("transB") else b[1])
            total += 2 * m * k * n
            continue
        outer = a[:-2] if len(a) >= len(b) else b[:-2]
        total += 2 * math.prod(outer) * a[-2] * a[-1] * b[-1]
    return total


def _known(shape: list[int | None] | None) -> list[int] | None:
    """A shape whose every dimension is known, else None (symbolic inference left a dimension open)."""
    if not shape or any(d is None for d in shape):
        return None
    return [int(d) for d in shape if d is not None]


def onnx_graph_of(bundle: str | Path) -> Path | None:
    """The smallest ONNX artifact of a bundle: every artifact of a bundle is the same model, so its FLOPs
    stand for the ExecuTorch and Core ML ones too."""
    from guard_sdk.bundle import read_manifest

    onnx_files = [a for a in read_manifest(Path(bundle)).artifacts if a.format == "onnx"]
    return Path(bundle) / min(onnx_files, key=lambda a: a.bytes).path if onnx_files else None


def input_flops(bundle: str | Path, window_lengths: list[int], batch: int) -> int | None:
    """FLOPs of a classify_batch call on ``batch`` inputs whose windows have ``window_lengths`` tokens."""
    graph = onnx_graph_of(bundle)
    if graph is None:
        return None
    counts = [matmul_flops(str(graph), n) for n in window_lengths]
    known = [c for c in counts if c is not None]
    return batch * sum(known) if len(known) == len(counts) else None
