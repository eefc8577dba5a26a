"""Counting a list file's entries in the background, so that the progress bar can have a total."""
from __future__ import annotations

import contextlib
import gzip
import os
import re
import threading
from typing import Any, Sized

from ..errors import InputError
from .entries import format_of, list_files
from .parquet import parquet_rows
from .streams import GZIP_MAGIC

_CHUNK = 1 << 20  # bytes of the list read at a time while counting
_TXT_ENTRY = re.compile(rb"^[ \t\f\v\r]*[^\s#]", re.MULTILINE)  # a line that is neither blank nor a comment
_ANY_ENTRY = re.compile(rb"^[ \t\f\v\r]*\S", re.MULTILINE)


class ListCounter:
    """Counts a list file's entries in a background thread; ``total`` is None until it is done."""

    def __init__(self, source: Any, input_format: str | None) -> None:
        self.total: int | None = None
        self._stop = threading.Event()
        if isinstance(source, Sized) and not isinstance(source, (str, bytes)):
            self.total = len(source)
        elif isinstance(source, (str, bytes, os.PathLike)) and source not in ("-", b"-"):
            threading.Thread(target=self._count, args=(os.fsdecode(source), input_format),
                             name="imgfetch-count", daemon=True).start()

    def _count(self, name: str, fmt: str | None) -> None:
        # An unreadable list: the run itself reports it, and the bar goes without a total.
        with contextlib.suppress(OSError, EOFError, gzip.BadGzipFile, ValueError, InputError):
            if os.path.isdir(name):  # a folder of lists: the sum of its files'
                counts = [self._entries(os.path.join(name, file), fmt or format_of(file))
                          for file in list_files(name, fmt)]
                self.total = None if None in counts else sum(c for c in counts if c is not None)
            else:
                self.total = self._entries(name, fmt or format_of(name))

    def _entries(self, name: str, fmt: str) -> int | None:
        if fmt == "parquet":
            return parquet_rows(name)  # from the file's footer
        pattern = _TXT_ENTRY if fmt == "txt" else _ANY_ENTRY
        with open(name, "rb") as raw:
            gzipped = raw.read(len(GZIP_MAGIC)) == GZIP_MAGIC
            raw.seek(0)
            handle = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
            count = 0
            while chunk := handle.read(_CHUNK):
                if self._stop.is_set():
                    return None
                chunk += handle.readline()  # end on a line boundary
                count += len(pattern.findall(chunk))
        return max(0, count - 1) if fmt in ("csv", "tsv") else count  # less the header

    def stop(self) -> None:
        self._stop.set()

