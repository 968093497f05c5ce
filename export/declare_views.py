"""Declare the text views an existing bundle scores, without exporting it again.

Why: the views (guard_sdk.views) are read by the runtime from guard.json, not baked into the model, so a bundle
exported before them (schema 1 or 2, such as the embedded default until it shipped with them) or with another set
can be given them in place. It also turns on prompt windows (text.prompt_windows, written by every export at
schema 3): without them a harmful request followed by benign padding and an answer is cut from the left and never
read. The model file and every hash stay as they are; only guard.json changes, so a signature over it (guard.sig)
no longer holds and is removed: sign the bundle again.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from guard_sdk.bundle import SCHEMA_VERSION, TextViews, verify_bundle, write_manifest
from guard_sdk.errors import ExportError
from guard_sdk.export.lookalikes import lookalike_table
from guard_sdk.signing import SIGNATURE_NAME
from guard_sdk.views import check_view_names


def declare_views(bundle_dir: str | Path, names: tuple[str, ...]) -> bool:
    """Make ``bundle_dir`` score ``names`` beside its text (guard.json at schema 3, with the look-alike table, and
    prompt windows on); whether a signature was removed. The bundle is verified first: a tampered one is refused,
    not blessed."""
    problem = check_view_names(names) or (None if names else "name at least one view")
    if problem:
        raise ExportError(problem)
    manifest = verify_bundle(bundle_dir)
    version = max(manifest.schema_version, SCHEMA_VERSION)
    write_manifest(bundle_dir, dataclasses.replace(manifest, schema_version=version,
                                                   text=dataclasses.replace(manifest.text, prompt_windows=True),
                                                   views=TextViews(list(names), lookalike_table())))
    signature = Path(bundle_dir) / SIGNATURE_NAME
    if signature.is_file():
        signature.unlink()
        return True
    return False
