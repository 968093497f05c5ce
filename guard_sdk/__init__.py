"""guard-sdk: small, fast LLM safety guards on the device.

    from guard_sdk import Guard
    guard = Guard.load("my-guard")
    guard.classify("How do I make a pipe bomb?").unsafe

Importing this package brings in numpy, tokenizers and onnxruntime only; the export and training
stages (``guard_sdk.export``, ``guard_sdk.training``) import torch when they are used.
"""

from guard_sdk.errors import (
    ArtifactChangedError,
    ArtifactMissingError,
    BackendUnavailableError,
    BundleError,
    DefaultGuardMissingError,
    ExportError,
    GuardError,
    InputError,
    InputTooLongError,
    InputTypeError,
    ManifestError,
    ParityError,
    SchemaVersionError,
    SignatureError,
    UnknownFormatError,
)
from guard_sdk.guard import Guard, Verdict

__version__ = "0.1.0"

__all__ = [
    "ArtifactChangedError",
    "ArtifactMissingError",
    "BackendUnavailableError",
    "BundleError",
    "DefaultGuardMissingError",
    "ExportError",
    "Guard",
    "GuardError",
    "InputError",
    "InputTooLongError",
    "InputTypeError",
    "ManifestError",
    "ParityError",
    "SchemaVersionError",
    "SignatureError",
    "UnknownFormatError",
    "Verdict",
    "__version__",
]
