"""Core ML steps: the exported program to an ML Program (.mlpackage, fp16), weight compression with
coremltools.optimize, and the checks that run where Core ML cannot predict (everywhere but macOS).
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guard_sdk.errors import BundleError, ExportError

if TYPE_CHECKING:
    from torch.export import ExportedProgram

# iOS 16 / macOS 13 is the oldest target with ML Program weight compression (constexpr ops) and flexible
# input shapes; newer targets would only narrow the devices a bundle reaches.
DEPLOYMENT_TARGET = "iOS16"
SPEC_VERSIONS = {7: "iOS16", 8: "iOS17", 9: "iOS18"}
COMPRESSED_WEIGHT_OPS = ("constexpr_affine_dequantize", "constexpr_lut_to_dense", "constexpr_blockwise_shift_scale")
# Core ML names the element types of a MultiArray by these enum values (FeatureTypes.proto).
_ARRAY_TYPES = {65568: "float32", 65552: "float16", 131104: "int32"}


def _quiet() -> None:
    """coremltools warns on import about untested torch and scikit-learn versions and missing macOS-only
    libraries; the export checks the converted model itself, so those lines are noise here."""
    for name in ("coremltools", "coremltools.converters"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="coremltools")


def convert(program: ExportedProgram) -> Any:
    """The exported program as an fp16 ML Program (an MLModel); every precision starts from this one."""
    import torch

    _quiet()
    import coremltools as ct

    program = program.run_decompositions({})
    for node in list(program.graph.nodes):  # eval-mode dropout leaves aten.alias, a no-op coremltools lacks
        if node.op == "call_function" and node.target == torch.ops.aten.alias.default:
            node.replace_all_uses_with(node.args[0])
            program.graph.erase_node(node)
    program.graph_module.recompile()
    return ct.convert(program, outputs=[ct.TensorType(name="logits")], convert_to="mlprogram",
                      compute_precision=ct.precision.FLOAT16,
                      minimum_deployment_target=getattr(ct.target, DEPLOYMENT_TARGET))


def compress(model: Any, precision: str) -> tuple[Any, dict[str, Any] | None]:
    """``model`` (fp16) in ``precision`` (fp16, int8, palette4), as a new MLModel, with its quantization record."""
    import coremltools.optimize as cto

    if precision == "int8":
        config = cto.coreml.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
        return (cto.coreml.linear_quantize_weights(model, cto.coreml.OptimizationConfig(global_config=config)),
                {"method": "coremltools.optimize.coreml.linear_quantize_weights", "weights": "int8, per channel",
                 "activations": "fp16", "embeddings": "int8 per row"})
    if precision == "palette4":
        config = cto.coreml.OpPalettizerConfig(mode="kmeans", nbits=4, granularity="per_tensor")
        return (cto.coreml.palettize_weights(model, cto.coreml.OptimizationConfig(global_config=config)),
                {"method": "coremltools.optimize.coreml.palettize_weights", "weights": "4-bit k-means palette",
                 "activations": "fp16", "embeddings": "4-bit palette"})
    return model, None


def read_spec(path: Path) -> dict[str, Any]:
    """What a Core ML model package declares, read without running it: input and output names, element
    types and shapes, its deployment target and its operations."""
    _quiet()
    import coremltools as ct

    try:
        model = ct.models.MLModel(str(path), skip_model_load=True)
        spec = model.get_spec()
    except Exception as e:  # coremltools raises bare Exceptions for a damaged package
        raise BundleError(f"{path}: not a readable Core ML model package ({e})", path) from e
    if spec.WhichOneof("Type") != "mlProgram":
        raise BundleError(f"{path}: holds a {spec.WhichOneof('Type')} model, not an ML Program", path)

    def feature(f: Any) -> dict[str, Any]:
        array = f.type.multiArrayType
        ranges = [[r.lowerBound, r.upperBound] for r in array.shapeRange.sizeRanges]
        return {"name": f.name, "dtype": _ARRAY_TYPES.get(array.dataType, str(array.dataType)), "shape": ranges}

    ops = Counter(op.type for function in spec.mlProgram.functions.values()
                  for block in function.block_specializations.values() for op in block.operations)
    return {
        "inputs": [feature(f) for f in spec.description.input],
        "outputs": [feature(f) for f in spec.description.output],
        "specification_version": spec.specificationVersion,
        "deployment_target": SPEC_VERSIONS.get(spec.specificationVersion, "unknown"),
        "operations": sum(ops.values()),
        "compressed_weights": sum(ops[name] for name in COMPRESSED_WEIGHT_OPS),
    }


def check_spec(spec: dict[str, Any], inputs: list[str], max_length: int, precision: str, path: Path) -> None:
    """Refuse a converted model whose interface is not the bundle's: names, int32 inputs of batch 1 and any
    length up to max_length, a float logits output, the deployment target, and compressed weights where asked."""
    problems = []
    names = [f["name"] for f in spec["inputs"]]
    if names != inputs:
        problems.append(f"inputs {names}, expected {inputs}")
    for f in spec["inputs"]:
        if f["dtype"] != "int32" or f["shape"] != [[1, 1], [1, max_length]]:
            problems.append(f"input {f['name']} is {f['dtype']} {f['shape']}, "
                            f"expected int32 [[1, 1], [1, {max_length}]]")
    outputs = [(f["name"], f["dtype"]) for f in spec["outputs"]]
    if len(outputs) != 1 or outputs[0][0] != "logits" or outputs[0][1] not in ("float16", "float32"):
        problems.append(f"outputs {outputs}, expected one float 'logits'")
    if spec["deployment_target"] != DEPLOYMENT_TARGET:
        problems.append(f"deployment target {spec['deployment_target']}, expected {DEPLOYMENT_TARGET}")
    if spec["operations"] == 0:
        problems.append("no operations")
    if (precision != "fp16") != (spec["compressed_weights"] > 0):
        problems.append(f"{spec['compressed_weights']} compressed weight tensors for precision {precision}")
    if problems:
        raise ExportError(f"{path.name}: the converted Core ML model is not what the bundle needs: "
                          + "; ".join(problems))
