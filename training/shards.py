"""Resumable output for long stages (generation, labelling): rows land in numbered Parquet shards as they
complete, so a killed run loses at most the rows of its unfinished shard and a rerun redoes only those.

Each shard is written to a temporary name and renamed into place, so a shard is either whole or absent.
Every row carries a key (its request number, or a hash of its text); on start the writer reads the keys
already on disk and the stage skips them. The result reads back as one ``datasets.Dataset``, ordered by key.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SHARD_GLOB = "shard-*.parquet"


class ShardWriter:
    """Buffer rows; every ``shard_rows`` rows, write them as the next shard of ``folder``."""

    def __init__(self, folder: str | Path, shard_rows: int, key: str = "id", schema: Any = None) -> None:
        """``schema`` (a ``pyarrow.Schema``) fixes the column types: a shard whose rows all hold None in a
        column would otherwise get a null-typed column that the other shards' cannot be read with."""
        import pyarrow.parquet as pq

        self.folder, self.shard_rows, self.key, self.schema = Path(folder), shard_rows, key, schema
        self.folder.mkdir(parents=True, exist_ok=True)
        for leftover in self.folder.glob("*.tmp"):  # a shard that was being written when the run was killed
            leftover.unlink()
        shards = sorted(self.folder.glob(SHARD_GLOB))
        for path in shards:
            _require_key(path, pq.read_schema(path).names, key)
        self.done: set[Any] = {k for path in shards for k in pq.read_table(path, columns=[key]).column(key).to_pylist()}
        self._next = len(shards)
        self._buffer: list[dict[str, Any]] = []

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()  # on an exception too: rows that completed are kept

    def todo(self, keys: Iterable[Any]) -> list[Any]:
        """The keys of ``keys`` not written yet, in order."""
        return [k for k in keys if k not in self.done]

    def add(self, row: dict[str, Any]) -> None:
        if row[self.key] in self.done:
            raise ValueError(f"row {self.key}={row[self.key]!r} is already written")
        self._buffer.append(row)
        self.done.add(row[self.key])
        if len(self._buffer) >= self.shard_rows:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._buffer:
            return
        path = self.folder / f"shard-{self._next:05d}.parquet"
        tmp = path.with_suffix(".tmp")
        pq.write_table(pa.Table.from_pylist(self._buffer, schema=self.schema), tmp)
        os.replace(tmp, path)
        self._next += 1
        self._buffer = []


def _require_key(shard: Path, columns: list[str], key: str) -> None:
    """Refuse a shard without the ``key`` column: written by an older version that keyed its rows otherwise,
    it would be mis-read (or its rows written again) under this key."""
    if key not in columns:
        from guard_sdk.training.data.schema import DataError

        raise DataError(f"{shard} has no {key!r} column: it was written by an older guard-sdk that keyed its rows "
                        f"otherwise and cannot be reused; delete {shard.parent} and run again")


def write_json(path: str | Path, data: Any, allow_nan: bool = True) -> None:
    """``data`` as JSON at ``path``, written under a temporary name and renamed: whole or absent. The name is
    the process's own, so processes of one multi-process run that write the same file never collide.
    ``allow_nan`` False refuses NaN and infinities (ValueError), which strict JSON readers cannot read."""
    import json

    path = Path(path)
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=allow_nan) + "\n"
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_shards(folder: str | Path, key: str = "id") -> Any:
    """Every shard of ``folder`` as one ``datasets.Dataset``, sorted by ``key``."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    shards = sorted(Path(folder).glob(SHARD_GLOB))
    if not shards:
        raise FileNotFoundError(f"{folder}: no {SHARD_GLOB} files")
    tables = [pq.read_table(path) for path in shards]
    for path, table in zip(shards, tables):
        _require_key(path, table.column_names, key)
    # In memory, straight from Arrow: Dataset.from_parquet would copy every shard into the datasets cache. Shards
    # written before a column was added read as null there.
    return Dataset(pa.concat_tables(tables, promote_options="default").sort_by(key))


def replace_dir(target: Path, write: Any) -> None:
    """Write a folder next to ``target`` and swap it in, so a killed run never leaves half of one. The old
    folder is renamed aside before it is removed (a rename cannot half-fail as a removal can), and the names
    are the process's own, so two processes replacing the same folder never write into each other's."""
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    write(str(partial))
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(partial, target)
    shutil.rmtree(old, ignore_errors=True)
