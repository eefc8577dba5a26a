"""The files of one dataset shard as a worker writes them: the tar of samples, the parquet of rows, the stats.

A row is one URL's record in img2dataset's column names where they overlap (``key`` is the sample key,
``error_message`` the error; the URL key is ``url_key``), with ``caption`` and the kept columns; a json
sample is the same row. The tar is written member by member with the stdlib's tar headers (no index kept
in memory); the parquet in row groups, so neither grows with the shard in memory.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import os
import struct
import tarfile
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..errors import ImgFetchError
from ..records import FetchResult, record_from_flat

DATASET_EXTRA = "pip install 'imgfetch[dataset]'"
RENAMED = {"key": "url_key", "error": "error_message"}  # record field -> row column (img2dataset's names)
_FROM_COLUMN = {column: name for name, column in RENAMED.items()}  # row column -> record field
LEFT_OUT = ("sample", "path", "skipped", "columns", "abspath", "shard")  # not row columns: the row is the shard's
IMAGE_COLUMN = "image"  # the image bytes, in --output-format parquet
GROUP_ROWS = 1024  # rows buffered before a parquet row group is written
GROUP_BYTES = 32 * 1024 * 1024  # or image bytes buffered (--output-format parquet)
BLOCK = tarfile.BLOCKSIZE
MEMBER_MODE = 0o644
# A ustar header: name, mode, uid, gid, size, mtime, checksum, type, link name, magic and version, user and
# group names, device numbers, name prefix, padding to 512 bytes (the layout tarfile writes).
_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")
_OCTAL_11 = 8 ** 11  # sizes and times in 11 octal digits
_MODE, _ZERO_ID = b"%07o\0" % MEMBER_MODE, b"0000000\0"
_FIXED_SUM = sum(_MODE + _ZERO_ID * 2 + b" " * 8 + tarfile.REGTYPE + tarfile.POSIX_MAGIC)  # what every header has
STATS_REASONS = 50  # failure reasons kept in a shard's stats


def require_pyarrow(what: str) -> Any:
    """pyarrow.parquet, or one line naming the extra to install."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImgFetchError(f"{what} needs pyarrow: {DATASET_EXTRA}") from None
    return pq


def check_pyarrow(what: str) -> None:
    """require_pyarrow's one line if pyarrow is missing, without importing it (0.1-0.3 s): for the parent of a
    run, which checks as the run starts but writes no rows (its workers import pyarrow, in their fork server)."""
    if importlib.util.find_spec("pyarrow") is None:  # (a submodule's spec would import pyarrow)
        raise ImgFetchError(f"{what} needs pyarrow: {DATASET_EXTRA}")


# What warm_up imports: a fork server that imports them once saves every worker forked from it their import
# (0.3-0.4 s of CPU each, seconds without .pyc). pyarrow imports pandas (where it is installed) only when it
# first converts values, not with pyarrow.pandas_compat: so pandas by name (0.2 s of CPU a worker; a fork
# server skips a module that is not installed).
WARM_IMPORTS = ("pyarrow.parquet", "pyarrow.pandas_compat", "pandas")


def warm_up() -> None:
    """Import now what writing rows imports on first use (pyarrow converting Python values imports pandas,
    where it is installed: seconds on a loaded machine), so that closing a shard as a worker ends is quick."""
    import pyarrow as pa

    require_pyarrow("a dataset output")
    pa.array(["warm"], type=pa.string())


def row_of(record: FetchResult, caption_column: str | None) -> dict[str, Any]:
    """The record as a shard's row (and json sample)."""
    row: dict[str, Any] = {"key": record.sample, "url": record.url}
    if caption_column is not None:
        row["caption"] = record.columns.get(caption_column)
    row.update(record.columns)
    if caption_column is not None:  # a kept column named caption does not hide it
        row["caption"] = record.columns.get(caption_column)
    for field in dataclasses.fields(FetchResult):
        if field.name not in LEFT_OUT and field.name != "url":
            row[RENAMED.get(field.name, field.name)] = getattr(record, field.name)
    return row


def record_of_row(row: dict[str, Any], shard: str, caption_column: str | None = None) -> FetchResult:
    """A shard's row (``row_of``) as the record it was made from: the row's key is the sample's; the caption
    column is a kept column only when it is one of that name."""
    flat = {_FROM_COLUMN.get(column, column): value for column, value in row.items()
            if column not in ("key", IMAGE_COLUMN) and (column != "caption" or caption_column in (None, "caption"))}
    return record_from_flat(flat, sample=row.get("key"), shard=shard)


def row_schema(columns: list[str], caption: bool, image: bool) -> Any:
    """The arrow schema of a shard's rows: typed from FetchResult's fields, so every shard has the same one."""
    import pyarrow as pa

    types: dict[str, Any] = {"key": pa.string(), "url": pa.string()}
    if caption:
        types["caption"] = pa.string()
    types.update((name, pa.string()) for name in columns)
    for field in dataclasses.fields(FetchResult):
        if field.name not in LEFT_OUT and field.name != "url":
            types[RENAMED.get(field.name, field.name)] = _arrow_type(pa, str(field.type))
    if image:
        types[IMAGE_COLUMN] = pa.binary()
    return pa.schema(list(types.items()))


def _arrow_type(pa: Any, annotation: str) -> Any:
    if annotation.startswith("bool"):
        return pa.bool_()
    if annotation.startswith("float"):
        return pa.float64()
    if annotation.startswith("int"):
        return pa.int64()
    return pa.string()


def compression(schema: Any) -> Any:
    """A shard parquet's compression: snappy, but none for the image bytes (JPEG and PNG do not compress:
    spare the CPU)."""
    if IMAGE_COLUMN not in schema.names:
        return "snappy"
    return {name: "NONE" if name == IMAGE_COLUMN else "SNAPPY" for name in schema.names}


class RowsFile:
    """A shard's rows, written to a parquet file a row group at a time.

    Row groups are converted and written by one thread of the shard's own: pyarrow's allocator keeps
    memory per thread, so conversions spread over a worker's many download threads would hold some
    in each of them. At most one row group waits while the next one fills.
    """

    def __init__(self, path: str, schema: Any) -> None:
        pq = require_pyarrow("a dataset output")
        self.schema = schema
        self.writer = pq.ParquetWriter(path, schema, compression=compression(schema))
        self.rows: list[dict[str, Any]] = []
        self.bytes = 0
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="imgfetch-rows")
        self._pending: Future[None] | None = None

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.bytes += len(row.get(IMAGE_COLUMN) or b"")
        if len(self.rows) >= GROUP_ROWS or self.bytes >= GROUP_BYTES:
            self.flush()

    def flush(self) -> None:
        """Hand the buffered rows to the writing thread (after the previous group is written: errors surface)."""
        self._wait()
        if self.rows:
            self._pending = self._thread.submit(self._write, self.rows)
            self.rows, self.bytes = [], 0

    def _write(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa

        self.writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            self.flush()
            self._wait()
        finally:
            self._thread.shutdown(wait=True)
            self.writer.close()


def member_header(name: str, size: int, mtime: int) -> bytes:
    """A tar member's header (ustar, as tarfile writes it); its data follows, padded to a whole block.
    Packed here for a sample's short name (tarfile's TarInfo.tobuf takes 30 us, twice per sample)."""
    raw = name.encode("utf-8")
    if len(raw) > tarfile.LENGTH_NAME or not (0 <= size < _OCTAL_11 and 0 <= mtime < _OCTAL_11):
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, mtime, MEMBER_MODE
        return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
    size_field, mtime_field = b"%011o\0" % size, b"%011o\0" % mtime
    checksum = _FIXED_SUM + sum(raw) + sum(size_field) + sum(mtime_field)  # of all bytes, the checksum's as blanks
    return _USTAR.pack(raw, _MODE, _ZERO_ID, _ZERO_ID, size_field, mtime_field, b"%06o\0 " % checksum,
                       tarfile.REGTYPE, b"", tarfile.POSIX_MAGIC, b"", b"", b"", b"", b"")


def tar_end(offset: int) -> bytes:
    """What ends a tar whose members end at ``offset``: two zero blocks, padded to a whole tar record."""
    return b"\0" * (2 * BLOCK + (-(offset + 2 * BLOCK) % tarfile.RECORDSIZE))


class TarFile:
    """A tar written member by member (ustar headers); ``rollback`` drops a sample half written."""

    def __init__(self, path: str) -> None:
        self.handle = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.mark = 0

    def begin(self) -> None:
        self.mark = self.handle.tell()

    def add(self, name: str, data: bytes, mtime: int) -> None:
        self.handle.write(member_header(name, len(data), mtime))
        self.handle.write(data)
        self.handle.write(b"\0" * (-len(data) % BLOCK))

    def flush(self) -> None:
        """To the OS: a sample whose record has left survives its process being killed (shardmend.py)."""
        self.handle.flush()

    def rollback(self) -> None:
        """Cut the file back to where the sample began (a write failed midway: the disk is full)."""
        self.handle.seek(self.mark)
        self.handle.truncate()

    def close(self) -> None:
        """The end-of-archive marker (two zero blocks, padded to a whole tar record), then close."""
        try:
            self.handle.write(tar_end(self.handle.tell()))
        finally:
            self.handle.close()


class ShardStats:
    """What a shard's ``NNNNN_stats.json`` says: counts by status, failure reasons, duration."""

    def __init__(self, name: str, output_format: str, started: float, wall: float) -> None:
        self.name, self.output_format, self.started, self.wall = name, output_format, started, wall
        self.status: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.bytes = 0

    @property
    def count(self) -> int:
        return sum(self.status.values())

    def add(self, record: FetchResult) -> None:
        self.status[record.status] += 1
        if record.error_kind:
            self.kinds[record.error_kind] += 1
        if record.error:
            self.reasons[record.error] += 1
        self.bytes += record.bytes or 0

    def write(self, path: str, ended: float, wall: float) -> None:
        """Written last: a stats file says the shard's other files are complete."""
        data = {"shard": self.name, "output_format": self.output_format, "count": self.count, "successes": self.status["ok"],
                "failed": self.count - self.status["ok"], "status": dict(self.status), "error_kinds": dict(self.kinds),
                "failure_reasons": dict(self.reasons.most_common(STATS_REASONS)), "bytes": self.bytes,
                "start_time": self.wall, "end_time": wall, "duration": round(ended - self.started, 3),
                "pid": os.getpid()}
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
            handle.write("\n")


def json_bytes(row: dict[str, Any]) -> bytes:
    return json.dumps(row, ensure_ascii=False).encode("utf-8")


def read_stats(path: str) -> dict[str, Any] | None:
    try:
        with io.open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
