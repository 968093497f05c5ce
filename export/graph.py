"""The graph the mobile formats start from: ``torch.export`` of the classifier, batch 1, with a dynamic
sequence length up to max_length.

ExecuTorch lowers this program to XNNPACK and coremltools converts it to an ML Program, so both formats
see one graph. DeBERTa-v2/v3 does not convert to Core ML as written in transformers; ``export_friendly``
swaps its two offending helpers for equivalents that compute the same numbers (a test asserts bit-equal
logits).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch.export import ExportedProgram
    from transformers import PreTrainedModel

EXAMPLE_LENGTH = 16


def _log_bucket_position(relative_pos: Any, bucket_size: int, max_position: int) -> Any:
    """transformers' ``make_log_bucket_position`` with ``torch.logical_and`` for the ``&`` of two bool tensors
    (an ``aten.__and__`` node, which coremltools cannot convert). Same float32 operations, same order."""
    import torch

    sign = torch.sign(relative_pos)
    mid = bucket_size // 2
    inside = torch.logical_and(relative_pos < mid, relative_pos > -mid)
    abs_pos = torch.where(inside, torch.full_like(relative_pos, mid - 1), torch.abs(relative_pos))
    log_span = float(torch.log(torch.tensor((max_position - 1) / mid)))  # the float32 value transformers uses
    log_pos = torch.ceil(torch.log(abs_pos / mid) / log_span * (mid - 1)) + mid
    return torch.where(abs_pos <= mid, relative_pos.type_as(log_pos), log_pos * sign)


def _scaled_size_sqrt(query_layer: Any, scale_factor: int) -> Any:
    """transformers' ``scaled_size_sqrt`` as a float32 constant: the original builds it from an int size,
    which coremltools types as int32 and refuses to ``sqrt``."""
    import torch

    return torch.sqrt(torch.tensor(float(query_layer.size(-1) * scale_factor), dtype=torch.float32))


@contextlib.contextmanager
def export_friendly(model: PreTrainedModel) -> Iterator[None]:
    """While tracing ``model``, replace the helpers of its family that the mobile converters cannot take."""
    if model.config.model_type != "deberta-v2":
        yield
        return
    from transformers.models.deberta_v2 import modeling_deberta_v2 as deberta

    saved = deberta.make_log_bucket_position, deberta.scaled_size_sqrt
    deberta.make_log_bucket_position, deberta.scaled_size_sqrt = _log_bucket_position, _scaled_size_sqrt
    try:
        yield
    finally:
        deberta.make_log_bucket_position, deberta.scaled_size_sqrt = saved


def classifier(model: PreTrainedModel) -> torch.nn.Module:
    """An ``nn.Module`` whose inputs carry the bundle's names (the converters keep them) and whose one
    output is the logits tensor."""
    import torch

    class Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
            with export_friendly(self.model):
                return self.model(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).logits

    return Classifier().eval()


def example_inputs(inputs: list[str], max_length: int) -> tuple[Any, ...]:
    import torch

    length = min(EXAMPLE_LENGTH, max_length)
    ids = torch.full((1, length), 5, dtype=torch.long)
    return tuple(torch.zeros_like(ids) if n == "token_type_ids" else torch.ones_like(ids) if n == "attention_mask"
                 else ids for n in inputs)


def dynamic_shapes(inputs: list[str], max_length: int) -> tuple[dict[int, Any], ...]:
    import torch

    seq = torch.export.Dim("seq", min=1, max=max_length)
    return tuple({1: seq} for _ in inputs)


def export_program(model: PreTrainedModel, inputs: list[str], max_length: int) -> ExportedProgram:
    """``torch.export`` (non-strict) of the classifier at batch 1 and any length from 1 to ``max_length``."""
    import torch

    with torch.no_grad():
        return torch.export.export(classifier(model), example_inputs(inputs, max_length),
                                   dynamic_shapes=dynamic_shapes(inputs, max_length), strict=False)
