"""Reading a bundle's files the one safe way: each file once, never through a link, never blocking, hashed from
the very bytes that are then loaded.

Why not open by path twice (hash, then load): a file swapped between the two is run unchecked. Why not follow
links: a bundle's symlink to /dev/zero or a FIFO hangs a reader, and one to a file outside the bundle runs
something guard.json never described. So every component under the bundle folder is opened relative to its
parent's descriptor with O_NOFOLLOW, the file with O_NONBLOCK (a FIFO opens at once and is then refused as not a
regular file), and at most the recorded size plus one byte is read. Where the platform lacks descriptor-relative
opens (Windows), each component is checked with lstat first: a narrower guarantee, still hashed from the bytes
used.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path, PurePosixPath

from guard_sdk.errors import ArtifactChangedError, ArtifactMissingError, BundleError

_DIR_FD = os.open in os.supports_dir_fd and hasattr(os, "O_NOFOLLOW")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_BINARY = getattr(os, "O_BINARY", 0)


def _refuse(error: OSError, full: Path) -> BundleError:
    if error.errno == errno.ENOENT:
        return ArtifactMissingError(f"{full}: listed in guard.json but missing from the bundle", full)
    if error.errno in (errno.ELOOP, errno.EMLINK, errno.ENOTDIR):
        return BundleError(f"{full}: a symbolic link (or under one); a bundle's files must be regular files "
                           "inside its folder", full)
    return BundleError(f"{full}: cannot be read ({error.strerror})", full)


def _open_relative(bundle_dir: Path, parts: tuple[str, ...]) -> int:
    """A read-only descriptor of bundle_dir/parts, no component followed if it is a link."""
    full = bundle_dir.joinpath(*parts)
    if not _DIR_FD:
        current = bundle_dir
        for part in parts:
            current = current / part
            try:
                if stat.S_ISLNK(os.lstat(current).st_mode):
                    raise _refuse(OSError(errno.ELOOP, "symbolic link"), full)
            except FileNotFoundError as e:
                raise _refuse(e, full) from e
        try:
            return os.open(full, os.O_RDONLY | _BINARY | _NONBLOCK)
        except OSError as e:
            raise _refuse(e, full) from e
    try:
        parent = os.open(bundle_dir, os.O_RDONLY | _DIRECTORY)
    except OSError as e:
        raise BundleError(f"{bundle_dir}: cannot open the bundle folder ({e.strerror})", bundle_dir) from e
    try:
        for part in parts[:-1]:
            child = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=parent)
            os.close(parent)
            parent = child
        return os.open(parts[-1], os.O_RDONLY | _NOFOLLOW | _NONBLOCK, dir_fd=parent)
    except OSError as e:
        raise _refuse(e, full) from e
    finally:
        os.close(parent)


def read_bundle_file(bundle_dir: str | Path, rel_path: str, size: int | None, sha256: str | None = None,
                     limit: int | None = None) -> bytes:
    """The bytes of a regular file of the bundle, read once. ``size``/``sha256``: what guard.json recorded,
    checked on those bytes (ArtifactChangedError); ``limit``: the most bytes a file of unrecorded size may have."""
    bundle_dir = Path(bundle_dir)
    full = bundle_dir / rel_path
    parts = PurePosixPath(rel_path).parts
    if not parts or PurePosixPath(rel_path).is_absolute() or ".." in parts:
        raise BundleError(f"{rel_path!r}: not a path inside the bundle folder", full)
    fd = _open_relative(bundle_dir, parts)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise BundleError(f"{full}: not a regular file (a folder, FIFO, socket or device); refused", full)
        if size is not None and info.st_size != size:
            raise ArtifactChangedError(f"{full}: {info.st_size} bytes, but guard.json recorded {size}; the file was "
                                       "changed or truncated, re-export the bundle", full)
        if size is None and limit is not None and info.st_size > limit:
            raise BundleError(f"{full}: {info.st_size} bytes, more than the {limit} it may have", full)
        cap = size if size is not None else limit
        data = f.read(cap + 1 if cap is not None else -1)
    if size is not None and len(data) != size:
        raise ArtifactChangedError(f"{full}: changed while it was read ({len(data)} bytes, guard.json recorded "
                                   f"{size}); re-export the bundle", full)
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ArtifactChangedError(f"{full}: sha256 differs from guard.json; the file was changed or tampered "
                                   "with, re-export the bundle", full)
    return data
