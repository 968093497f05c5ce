"""Typed errors, so that callers and the CLI can tell bad input from a broken bundle from a failure."""

from __future__ import annotations

from pathlib import Path


class GuardError(Exception):
    """Base class of every error guard-sdk raises on purpose."""


class InputError(GuardError, ValueError):
    """A text or argument the guard cannot take (empty where it must not be, too large, not UTF-8)."""


class InputTooLongError(InputError):
    """A text that needs more windows than the guard's ``max_windows``: refused before the model runs."""


class FolderInUseError(InputError):
    """A folder that export or `android assets` was told to replace holds files they did not write there:
    replacing it would delete them, so they refuse and name the folder."""


class PolicyError(InputError):
    """A policy that cannot apply: not a valid policy file, or naming a category the bundle does not score."""


class InputTypeError(InputError, TypeError):
    """A prompt or response that is not a ``str`` (``None`` included); bad input like any InputError."""


class BundleError(GuardError):
    """A guard bundle that cannot be loaded; ``path`` names the file at fault."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        super().__init__(message)


class ManifestError(BundleError):
    """guard.json is missing, not JSON, or breaks the schema."""


class SchemaVersionError(ManifestError):
    """guard.json was written by a schema this runtime does not know."""


class ArtifactMissingError(BundleError):
    """A file that guard.json lists is not in the bundle."""


class ArtifactChangedError(BundleError):
    """A file's size or sha256 differs from what guard.json recorded: changed, truncated or tampered."""


class SignatureError(BundleError):
    """A bundle loaded with trusted keys whose guard.sig is missing, malformed, or not a trusted key's signature
    of its guard.json."""


class UnknownFormatError(BundleError):
    """An artifact's format, or a requested backend or precision, is not one this runtime knows."""


class DefaultGuardMissingError(BundleError):
    """The embedded default guard (guard_sdk/models/default) is missing from this installation."""


class BackendUnavailableError(GuardError):
    """The backend a bundle needs cannot run here (library not installed, wrong platform)."""


class ExportError(GuardError):
    """An export that could not finish; nothing was written."""


class ParityError(ExportError):
    """An exported artifact disagrees with the PyTorch model past the tolerance."""
