"""guard_sdk.export: a Hugging Face sequence-classification checkpoint to a guard bundle.

Export is a pipeline of small named steps (pipeline.py): load the checkpoint, write the tokenizer,
export each format, quantize, check every artifact against PyTorch, then write guard.json and the
model card and move the finished bundle into place. Needs ``pip install 'guard-sdk[export]'``.
"""

from guard_sdk.export.pipeline import ExportConfig, export_bundle

__all__ = ["ExportConfig", "export_bundle"]
