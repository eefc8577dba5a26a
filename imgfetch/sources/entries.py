"""Opening a URL list: choosing its reader, and the closable lazy iterator over its entries.

A folder is a list of lists: its files (not hidden, and of a list format unless --input-format says)
are read one after another in name order, numbered as one list, each file's lines on from the previous
file's last entry; each entry keeps the name of its file in the column ``source``.
"""
from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Generator, Iterable, Iterator
from typing import IO, Any

from ..errors import InputError
from ..options.values import INPUT_FORMATS
from ..records import SOURCE_COLUMN
from .parquet import open_parquet, parquet_entries
from .readers import Entry, csv_entries, iterable_entries, jsonl_entries, txt_entries
from .streams import open_stream

_EXTENSIONS = {".txt": "txt", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
               ".parquet": "parquet"}
_DELIMITERS = {"csv": ",", "tsv": "\t"}
_GZIP_SUFFIX = ".gz"
_STDIN = "-"  # the source that means standard input


class Entries(Iterator[Entry]):
    """The lazy entry iterator returned by :func:`open_entries`; closable, a context manager."""

    def __init__(self, entries: Generator[Entry, None, None],
                 stream: IO[bytes] | None) -> None:
        self._entries, self._stream = entries, stream

    def __next__(self) -> Entry:
        return next(self._entries)

    def close(self) -> None:
        """Stop reading and close the file (never closes standard input itself)."""
        try:
            self._entries.close()
        finally:
            if self._stream is not None:
                self._stream.close()

    def __enter__(self) -> Entries:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_entries(source: Any, *, input_format: str | None = None, url_column: str = "url",
                 url_key: str = "url", keep_columns: tuple[str, ...] = ()) -> Entries:
    """Open and check the list now (raising InputError / ValueError); return a lazy iterator.

    ``source``: a path, ``"-"`` for standard input, a binary stream (read as standard input is), or an
    iterable of str or of mappings.
    """
    keep = tuple(keep_columns)
    fmt = input_format.lower() if isinstance(input_format, str) else input_format
    if fmt is not None and fmt not in INPUT_FORMATS:
        raise ValueError("--input-format must be one of " + ", ".join(INPUT_FORMATS))
    if isinstance(source, (str, bytes, os.PathLike)) and os.path.isdir(source):
        return Entries(_folder_entries(os.fsdecode(source), list_files(source, fmt), fmt, url_column, url_key, keep),
                       None)
    if isinstance(source, (str, bytes, os.PathLike)) or is_stream(source):
        return _open_file(source, fmt, url_column, url_key, keep)
    if isinstance(source, Iterable):
        return Entries(iterable_entries(source, url_key, keep), None)
    raise TypeError(f"cannot read URLs from {type(source).__name__}")


def is_stream(source: Any) -> bool:
    """Whether a list is a binary stream given by the caller (the CLI's standard input)."""
    return isinstance(source, io.IOBase) or hasattr(source, "read") and not isinstance(source, (str, bytes))


def _open_file(source: str | bytes | os.PathLike[Any] | IO[bytes], fmt: str | None, url_column: str,
               url_key: str, keep: tuple[str, ...]) -> Entries:
    is_stdin = isinstance(source, str) and source == _STDIN or is_stream(source)
    name = "<stdin>" if is_stdin else os.fsdecode(source)  # type: ignore[arg-type]
    if fmt is None:
        fmt = "txt" if is_stdin else format_of(name)
    if fmt == "txt" and keep:
        raise ValueError("--keep-columns and --caption-column need a CSV, TSV, JSON Lines or parquet list")
    if fmt == "parquet":
        if is_stdin or not isinstance(source, (str, bytes, os.PathLike)):
            raise InputError("a parquet list is read from a file, not from standard input")
        parquet, stream = open_parquet(source, name)
    else:
        stream = open_stream(source, name, is_stdin, fmt)
    try:  # the columns and a CSV header are checked now: a bad one closes the file
        if fmt == "parquet":
            entries = parquet_entries(parquet, name, url_column, keep)
        elif fmt in _DELIMITERS:
            entries = csv_entries(stream, name, _DELIMITERS[fmt], url_column, keep)
        elif fmt == "jsonl":
            entries = jsonl_entries(stream, name, url_key, keep)
        else:
            entries = txt_entries(stream, name)
    except BaseException:
        stream.close()
        raise
    return Entries(entries, stream)


def list_files(folder: str | bytes | os.PathLike[Any], fmt: str | None) -> list[str]:
    """The names of a folder's lists, in name order: files not hidden, of a list format unless ``fmt`` is given."""
    name = os.fsdecode(folder)
    try:
        names = sorted(entry.name for entry in os.scandir(name)
                       if not entry.name.startswith(".") and entry.is_file() and (fmt or list_format(entry.name)))
    except OSError as exc:
        raise InputError(f"{name}: cannot read the folder ({exc.strerror or exc})") from None
    if not names:
        raise InputError(f"{name}: a folder without URL lists (.txt, .csv, .tsv, .jsonl, .parquet, or .gz)")
    return names


def _folder_entries(folder: str, names: list[str], fmt: str | None, url_column: str, url_key: str,
                    keep: tuple[str, ...]) -> Generator[Entry, None, None]:
    offset = 0
    for name in names:
        with _open_file(os.path.join(folder, name), fmt, url_column, url_key, keep) as entries:
            last = 0
            for entry in entries:
                last = entry.line
                yield dataclasses.replace(entry, line=offset + entry.line, columns={**entry.columns, SOURCE_COLUMN: name})
        offset += last


def format_of(name: str) -> str:
    """The format a file name's extension (before any ``.gz``) names; text by default."""
    return list_format(name) or "txt"


def list_format(name: str) -> str | None:
    """The list format a name's extension names (``.csv``, ``.txt.gz``, any ``.gz``), or None if it names none."""
    base = name.lower()
    gzipped = base.endswith(_GZIP_SUFFIX)
    base = base[:-len(_GZIP_SUFFIX)] if gzipped else base
    return _EXTENSIONS.get(os.path.splitext(base)[1], "txt" if gzipped else None)


def iter_entries(source: Any, *, input_format: str | None = None, url_column: str = "url",
                 url_key: str = "url", keep_columns: tuple[str, ...] = ()) -> Iterator[Entry]:
    """Like :func:`open_entries`, but nothing is opened until iteration starts."""
    with open_entries(source, input_format=input_format, url_column=url_column,
                      url_key=url_key, keep_columns=keep_columns) as entries:
        yield from entries
