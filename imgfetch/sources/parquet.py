"""Parquet URL lists, read a batch of rows at a time with pyarrow (never the whole file), and their row count.

Rows are numbered from 1, as CSV data rows are. Only the URL column and the kept columns are read.
"""
from __future__ import annotations

import io
import os
from collections.abc import Generator
from typing import Any

from ..errors import InputError
from .readers import Entry, _column_text, _find_column, _make
from .streams import open_raw

DATASET_EXTRA = "pip install 'imgfetch[dataset]'"
BATCH_ROWS = 8192  # rows decoded at a time: a row group is read piece by piece, never the file at once


def _pyarrow_parquet(name: str) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{name}: a parquet list needs pyarrow: {DATASET_EXTRA}") from None
    return pq


def open_parquet(path: str | bytes | os.PathLike[Any], name: str) -> tuple[Any, io.BufferedReader]:
    """The ParquetFile and its open file; one-line InputErrors for a missing or unreadable file."""
    pq = _pyarrow_parquet(name)
    handle = open_raw(path, name)  # closed by the Entries that reads it
    try:
        return pq.ParquetFile(handle), handle
    except Exception as exc:  # noqa: BLE001 - pyarrow raises its own kinds for a file that is not parquet
        handle.close()
        raise InputError(f"{name}: not a readable parquet file ({exc})") from None


def parquet_entries(parquet: Any, name: str, url_column: str,
                    keep: tuple[str, ...]) -> Generator[Entry, None, None]:
    """Check the columns now (eagerly) and return a generator over the rows."""
    names = list(parquet.schema_arrow.names)
    url_name = names[_find_column(names, url_column, name)]
    keep_names = {k: names[_find_column(names, k, name)] for k in keep}
    return _rows(parquet, name, url_name, keep_names)


def _rows(parquet: Any, name: str, url_name: str, keep_names: dict[str, str]) -> Generator[Entry, None, None]:
    wanted = list(dict.fromkeys([url_name, *keep_names.values()]))
    line = 0
    try:
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=wanted):
            data = batch.to_pydict()
            urls = data[url_name]
            kept = {k: data[column] for k, column in keep_names.items()}
            for index, value in enumerate(urls):
                line += 1
                columns = {k: _column_text(values[index]) for k, values in kept.items()}
                if isinstance(value, bytes):
                    value = value.decode("utf-8", "replace")
                if value is None or not str(value).strip():
                    yield Entry(line, "", None, f"no URL in column '{url_name}'", columns)
                else:
                    yield _make(line, str(value).strip(), columns)
    except Exception as exc:  # noqa: BLE001 - a read error, or pyarrow's own for a damaged row group
        raise InputError(f"{name}: read error ({getattr(exc, 'strerror', None) or exc})") from None


def parquet_rows(path: str) -> int:
    """Rows in a parquet file, from its footer alone."""
    pq = _pyarrow_parquet(path)
    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception as exc:  # noqa: BLE001 - pyarrow's own kinds for a file that is not parquet
        raise InputError(f"{path}: not a readable parquet file ({exc})") from None
