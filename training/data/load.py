"""One entry point for labelled data: a built-in source name, a local file, a saved Dataset folder, or a
hub id."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from guard_sdk.training.data.readers import FILE_FORMATS, read_records, rows_from_records
from guard_sdk.training.data.schema import COLUMNS, DataError, features, to_dataset
from guard_sdk.training.data.sources import BUILTIN, load_builtin


def load_data(
    spec: str | Path,
    *,
    root: str | Path | None = None,
    columns: Mapping[str, str] | None = None,
    label_map: Mapping[object, int] | None = None,
    split: str | None = None,
    source: str | None = None,
    config: str | None = None,
) -> Any:
    """A Dataset from a built-in source name, a local file, a saved Dataset folder, or a hub id.

    ``columns`` maps prompt/response/label/category to the data's own column names; ``split`` picks a split
    of a hub dataset or a saved DatasetDict, ``config`` a hub dataset's configuration; ``source`` names the
    rows (default: the file or hub id).
    """
    spec_str = str(spec)
    path = Path(spec)
    local = spec_str in BUILTIN or path.is_file() or path.suffix.lower() in FILE_FORMATS
    if split is not None and local:
        raise DataError(f"{spec_str}: a built-in source or a data file has no splits; split= (--split) picks one of "
                        "a saved DatasetDict or a hub dataset")
    if spec_str in BUILTIN:
        return load_builtin(spec_str, root)
    if path.is_file() or path.suffix.lower() in FILE_FORMATS:
        records = read_records(path)
        return to_dataset(rows_from_records(records, str(path), source or path.stem, columns, label_map))
    import datasets

    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file()):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DataError(f"{path}: holds the splits {', '.join(loaded)}; pick one with split= (--split)")
            loaded = loaded[split]
        elif split is not None:
            raise DataError(f"{path}: a saved Dataset with no splits; drop split= (--split)")
        if set(COLUMNS) <= set(loaded.column_names):
            return loaded
        return to_dataset(rows_from_records(loaded, str(path), source or path.name, columns, label_map))
    try:  # a hub id, or a folder of data files that `datasets` knows how to read
        loaded = datasets.load_dataset(spec_str, config, split=split or "train")
    except Exception as e:  # datasets raises many types (offline, not found, bad config); name the spec
        close = difflib.get_close_matches(spec_str, BUILTIN, n=1)
        hint = f"; did you mean the built-in source {close[0]}?" if close else ""
        raise DataError(f"{spec_str}: not a built-in source, a data file or a loadable dataset ({e}){hint}") from e
    return to_dataset(rows_from_records(loaded, spec_str, source or spec_str, columns, label_map))


def concat(parts: Sequence[Any]) -> Any:
    import datasets

    schema = features()
    return datasets.concatenate_datasets([p if p.features == schema else p.cast(schema) for p in parts])
