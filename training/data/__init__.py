"""Labelled safety data in one schema (``schema``), from a user's file (``readers``), the shared sources
(``sources``) or the hub (``load``), split without leakage (``splits``).

The names a caller needs are here, so ``from guard_sdk.training import data as D`` reads ``D.load_data``.
"""

from guard_sdk.training.data.load import concat, load_data
from guard_sdk.training.data.readers import FILE_FORMATS, read_records, rows_from_records
from guard_sdk.training.data.schema import (
    COLUMNS,
    LABEL_VALUES,
    LABELS,
    SPLITS,
    DataError,
    Row,
    features,
    label_value,
    normalize,
    to_dataset,
)
from guard_sdk.training.data.sources import (
    BUILTIN,
    DATA_DIR_ENV,
    EVALUATION_ONLY,
    UNLABELLED,
    data_dir,
    load_builtin,
)
from guard_sdk.training.data.splits import cap_per_source, data_summary, make_splits, overlap, split_of

__all__ = ["BUILTIN", "COLUMNS", "DATA_DIR_ENV", "EVALUATION_ONLY", "FILE_FORMATS", "LABELS", "LABEL_VALUES",
           "SPLITS", "UNLABELLED", "DataError", "Row", "cap_per_source", "concat",
           "data_dir", "data_summary", "features", "label_value", "load_builtin", "load_data", "make_splits",
           "normalize", "overlap", "read_records", "rows_from_records", "split_of", "to_dataset"]
