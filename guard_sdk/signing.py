"""Signed bundles: an Ed25519 signature over guard.json's bytes. guard.json holds every file's size and sha256,
so one signature covers the whole bundle, and a swapped model, tokenizer or threshold breaks it.

The signature lives beside guard.json in guard.sig, a small JSON object: {"algorithm": "ed25519", "key_id": the
first 16 hex digits of the sha256 of the raw public key, "signature": base64}. Keys are PEM files, which both
``cryptography`` here and the JDK on Android read: the private key PKCS#8, the public key SubjectPublicKeyInfo.
A runtime given trusted keys (``Guard.load(..., trusted_keys=...)``) refuses a bundle without guard.sig or whose
signature no trusted key verifies, before it parses a byte of guard.json.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from guard_sdk.bundle import MANIFEST_NAME, parse_manifest, read_manifest_bytes, verify_files
from guard_sdk.bundle_files import read_bundle_file
from guard_sdk.errors import ArtifactMissingError, InputError, SignatureError

SIGNATURE_NAME = "guard.sig"
ALGORITHM = "ed25519"
MAX_SIGNATURE_BYTES = 4096
MAX_KEY_BYTES = 16384

TrustedKeys = str | Path | bytes | Sequence[str | Path | bytes]  # a PEM public key file or its bytes, or several


def _raw(public: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def key_id(public: Any) -> str:
    """The first 16 hex digits of the sha256 of a public key's 32 raw bytes: how guard.sig names its signer."""
    return hashlib.sha256(_raw(public)).hexdigest()[:16]


def _pem(source: str | Path | bytes, what: str) -> bytes:
    if isinstance(source, bytes):
        return source
    path = Path(source)
    try:
        if path.stat().st_size > MAX_KEY_BYTES:
            raise InputError(f"{path}: {path.stat().st_size} bytes is no {what} PEM file")
        return path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read the {what} ({e.strerror})") from e


def _name(source: str | Path | bytes) -> str:
    return "the key" if isinstance(source, bytes) else str(source)


def load_public_key(source: str | Path | bytes) -> Any:
    """An Ed25519 public key from a PEM file (or its bytes); InputError for anything else."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(_pem(source, "public key"))
    except (ValueError, TypeError) as e:
        raise InputError(f"{_name(source)}: not a PEM public key ({e})") from e
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"{_name(source)}: a {type(key).__name__}, not the "
                         "Ed25519 key guard-sdk signs with")
    return key


def load_private_key(source: str | Path | bytes) -> Any:
    """An Ed25519 private key from an unencrypted PKCS#8 PEM file (or its bytes); InputError for anything else."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(_pem(source, "private key"), password=None)
    except (ValueError, TypeError) as e:
        raise InputError(f"{_name(source)}: not an unencrypted PEM private "
                         f"key ({e})") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{_name(source)}: a {type(key).__name__}, not an "
                         "Ed25519 key; make one with guard-sdk keygen")
    return key


def generate_keys(private_path: str | Path, public_path: str | Path) -> str:
    """Write a new Ed25519 key pair as PEM files (the private one readable by its owner only); its key id."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path, public_path = Path(private_path), Path(public_path)
    for path in (private_path, public_path):
        if path.exists():
            raise InputError(f"{path} exists; guard-sdk keygen never overwrites a key")
        if not path.parent.is_dir():
            raise InputError(f"{path.parent}: no such folder to write {path.name} in")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_id(key.public_key())


def sign_bundle(bundle_dir: str | Path, private_key: str | Path | bytes) -> Path:
    """Sign ``bundle_dir``'s guard.json with ``private_key``; write and return guard.sig. A guard.json the runtime
    would refuse, or one whose files do not match it, is refused rather than signed."""
    key = load_private_key(private_key)
    data = read_manifest_bytes(bundle_dir)
    verify_files(bundle_dir, parse_manifest(data, Path(bundle_dir) / MANIFEST_NAME))
    record = {"algorithm": ALGORITHM, "key_id": key_id(key.public_key()),
              "signature": base64.b64encode(key.sign(data)).decode("ascii")}
    path = Path(bundle_dir) / SIGNATURE_NAME
    tmp = path.with_name(f".{SIGNATURE_NAME}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def check_signature(bundle_dir: str | Path, manifest_bytes: bytes, trusted_keys: TrustedKeys) -> str:
    """The key id of the trusted key whose signature in guard.sig verifies ``manifest_bytes``; SignatureError for a
    missing, malformed or untrusted signature."""
    from cryptography.exceptions import InvalidSignature

    path = Path(bundle_dir) / SIGNATURE_NAME
    # One key as a path or its bytes; a str is a Sequence too, but of characters, not of keys.
    sources = [trusted_keys] if isinstance(trusted_keys, (str, Path, bytes)) else list(trusted_keys)
    keys = [load_public_key(k) for k in sources]
    if not keys:
        raise InputError("trusted_keys is empty: give at least one public key, or None to skip the signature check")
    try:
        raw = read_bundle_file(bundle_dir, SIGNATURE_NAME, None, limit=MAX_SIGNATURE_BYTES)
    except ArtifactMissingError as e:
        raise SignatureError(f"{path}: missing; this bundle is not signed, and trusted keys were given "
                             "(sign it with guard-sdk sign BUNDLE --key PRIVATE.pem)", path) from e
    try:
        record = json.loads(raw.decode("utf-8"))
        signature = base64.b64decode(record["signature"], validate=True)
        algorithm, signer = record["algorithm"], record["key_id"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise SignatureError(f"{path}: not a guard.sig record ({e})", path) from e
    if algorithm != ALGORITHM:
        raise SignatureError(f"{path}: algorithm {algorithm!r}; guard-sdk verifies {ALGORITHM} only", path)
    for key in keys:
        if key_id(key) != signer:
            continue
        try:
            key.verify(signature, manifest_bytes)
        except InvalidSignature:
            raise SignatureError(f"{path}: the signature of key {signer} does not match guard.json; the bundle "
                                 "was changed after it was signed", path) from None
        return signer
    raise SignatureError(f"{path}: signed by key {signer!r}, which is not among the {len(keys)} trusted key(s) "
                         f"({', '.join(key_id(k) for k in keys)})", path)
