"""Mending, in the parent, a dataset shard whose records and files do not agree at the end of a run (shardset.py;
the README's "Build a dataset" says when). Nothing a record says is done may be missing from the dataset:

- a shard its worker closed, whose last records the parent never wrote: ``missing_records`` from its rows;
- a tar whose worker died: it holds every sample whose record left the worker (each is flushed before its
  record is sent), so ``mend_tar`` cuts it after the last recorded one, walking headers, never image bytes,
  and ``write_rows`` writes its rows and stats from the manifest; a parquet shard is lost (``lost_record``);
- a URL a later run fetched again: ``drop_rows`` takes its older row out of the earlier shard's parquet.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tarfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ..records import FAILED, ErrorKind, FetchResult
from .shardfiles import (
    BLOCK,
    IMAGE_COLUMN,
    RowsFile,
    ShardStats,
    compression,
    read_stats,
    record_of_row,
    require_pyarrow,
    row_of,
    row_schema,
    tar_end,
)

LOST = "its shard was lost: the worker process writing it died; fetched again next run"


def missing_records(rows_path: str, recorded: set[str], shard: str, caption_column: str | None) -> list[FetchResult]:
    """The records in a closed shard's rows whose URL key is not in ``recorded``."""
    pq = require_pyarrow("a dataset output")
    names = [name for name in pq.read_schema(rows_path).names if name != IMAGE_COLUMN]
    rows = pq.read_table(rows_path, columns=names).to_pylist()
    return [record_of_row(row, shard, caption_column) for row in rows if row.get("url_key") not in recorded]


def mend_tar(path: str, samples: set[str]) -> set[str]:
    """End a tar that its writer never finished, holding only the whole members of ``samples`` (the recorded
    ones); return the samples it holds. Members are walked header by header: image bytes are never read."""
    ranges = _kept_members(path, samples)
    kept = {key for key, _start, _end in ranges}
    if all(start == (ranges[i - 1][2] if i else 0) for i, (_key, start, _end) in enumerate(ranges)):
        end = ranges[-1][2] if ranges else 0  # the usual case: the recorded samples come first
        with open(path, "r+b") as handle:
            handle.truncate(end)
            handle.seek(end)
            handle.write(tar_end(end))
        return kept
    fresh = path + ".mend"  # samples whose records were never written sit between recorded ones: copy around them
    with open(path, "rb") as source, open(fresh, "wb") as target:
        for _key, start, end in ranges:
            _copy(source.fileno(), target.fileno(), start, end - start)
        target.seek(0, os.SEEK_END)
        target.write(tar_end(target.tell()))
    os.replace(fresh, path)
    return kept


def _kept_members(path: str, samples: set[str]) -> list[tuple[str, int, int]]:
    """(sample, start, end) of each whole member of the tar that belongs to one of ``samples``, in order."""
    ranges: list[tuple[str, int, int]] = []
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        offset = 0
        while offset + BLOCK <= size:
            handle.seek(offset)
            header = handle.read(BLOCK)
            if header.count(0) == BLOCK:
                break
            try:
                info = tarfile.TarInfo.frombuf(header, "utf-8", "strict")
            except tarfile.TarError:
                break
            following = offset + BLOCK + info.size + (-info.size % BLOCK)
            if following > size:
                break  # a member cut short by the kill
            key = info.name.split(".", 1)[0]
            if key in samples:
                ranges.append((key, offset, following))
            offset = following
    return ranges


def _copy(source: int, target: int, offset: int, count: int) -> None:
    """Copy file to file in the kernel (copy_file_range): the bytes never enter this process."""
    while count > 0:
        done = os.copy_file_range(source, target, count, offset)
        if done <= 0:
            raise OSError(f"copy_file_range copied nothing at {offset}")
        offset, count = offset + done, count - done


def write_rows(rows_path: str, stats_path: str, name: str, output_format: str, records: list[FetchResult],
               caption_column: str | None, started: float) -> None:
    """Write a shard's rows and then its stats (the sign that the shard is complete) from its records."""
    columns = list(records[0].columns) if records else []
    rows = RowsFile(rows_path, row_schema(columns, caption_column is not None, image=False))
    stats = ShardStats(name, output_format, time.monotonic(), started)
    try:
        for record in records:
            rows.add(row_of(record, caption_column))
            stats.add(record)
    finally:
        rows.close()
    stats.write(stats_path, time.monotonic(), time.time())


def lost_record(record: FetchResult) -> FetchResult:
    """A failure that supersedes a record whose sample no complete shard holds."""
    return dataclasses.replace(record, status=FAILED, error=LOST, error_kind=ErrorKind.DISK, shard=None, sample=None,
                               bytes=None, sha256=None, format=None, width=None, height=None, skipped=False)


def drop_rows(rows_path: Path, stats_path: Path, keys: set[str], tmp: Path) -> int:
    """Rewrite a shard's parquet without the rows of ``keys`` (URL keys a later shard has rows for), a row group
    at a time, and put it in place atomically; then its stats without them. Returns the rows dropped."""
    pq = require_pyarrow("a dataset output")
    import pyarrow as pa
    import pyarrow.compute as pc

    source = pq.ParquetFile(rows_path)
    wanted = pa.array(sorted(keys), type=pa.string())
    fresh = tmp / (rows_path.name + ".rows")
    gone: list[Any] = []
    try:
        with pq.ParquetWriter(fresh, source.schema_arrow, compression=compression(source.schema_arrow)) as writer:
            for group in range(source.num_row_groups):
                table = source.read_row_group(group)
                older = pc.is_in(table["url_key"], value_set=wanted)
                gone.append(table.filter(older).select(["status", "error_kind", "error_message", "bytes"]))
                writer.write_table(table.filter(pc.invert(older)))
        dropped = sum(part.num_rows for part in gone)
        if dropped:
            os.replace(fresh, rows_path)
            _drop_from_stats(stats_path, pa.concat_tables(gone).to_pylist(), tmp)
        return dropped
    finally:
        fresh.unlink(missing_ok=True)


def _drop_from_stats(path: Path, rows: list[dict[str, Any]], tmp: Path) -> None:
    data = read_stats(str(path))
    if data is None:
        return
    for key, column in (("status", "status"), ("error_kinds", "error_kind"), ("failure_reasons", "error_message")):
        counts = Counter(data.get(key) or {})
        counts.subtract(row[column] for row in rows if row[column])
        data[key] = {name: count for name, count in counts.items() if count > 0}
    data["count"] = sum(data["status"].values())
    data["successes"] = data["status"].get("ok", 0)
    data["failed"] = data["count"] - data["successes"]
    data["bytes"] = max(0, int(data.get("bytes") or 0) - sum(row["bytes"] or 0 for row in rows))
    fresh = tmp / (path.name + ".new")
    fresh.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(fresh, path)
