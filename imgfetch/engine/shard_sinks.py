"""Where a shard task's records and images go (shard_task.py), for each output format.

- ``files``: the images go straight into OUT (the per-URL pipeline saves them), and each record is
  appended at once to the shard's manifest part in OUT, so a shard cut short (a killed Dask worker,
  a stop) is redone per URL from its own records. The shard's counts, written last, say it is complete.
- ``webdataset`` / ``parquet``: the tar, the parquet, the stats and the part are written on the Dask
  worker's local disk and published into OUT only once complete (store/publish.py), the counts last.
  A shard cut short publishes nothing and is redone whole. When OUT is object storage (a Destination),
  publishing is an upload of each file in the same order, straight from the Dask worker.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

from ..options import Options
from ..records import FetchResult
from ..store.manifest import DoneIndex
from ..store.parts import done_name, part_name, shard_done, write_json
from ..store.publish import publish
from ..store.remote import Destination
from ..store.shards import DATA_SUFFIX, ShardWriter, shard_name

STAGING_PREFIX = "imgfetch-shard-"  # a dataset shard's folder on the Dask worker's local disk: then its process id


def remove_stale_staging() -> None:
    """Remove the staging folders that Dask worker processes killed mid-shard left on this machine's disk."""
    folder = tempfile.gettempdir()
    for name in os.listdir(folder):
        pid = name[len(STAGING_PREFIX):].split("-", 1)[0] if name.startswith(STAGING_PREFIX) else ""
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: its folder is not ours to judge
    return True


def open_sink(opts: Options, out: str | Destination, number: int, columns: list[dict[str, str]]) -> "FilesSink | DatasetSink":
    """The sink of shard ``number``; ``columns``: the first entry's kept columns (a dataset's row schema)."""
    if opts.output_format == "files":
        assert isinstance(out, str)  # object storage takes the dataset formats only (engine/folder.py)
        return FilesSink(out, number)
    return DatasetSink(opts, out, number, list(columns[0]) if columns else [])


class _Part:
    """A manifest part, appended one record line at a time (a line cut by a kill is finished first)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        if self.handle.tell():
            with open(path, "rb") as check:
                check.seek(-1, os.SEEK_END)
                if check.read(1) != b"\n":
                    self.handle.write("\n")

    def add(self, record: FetchResult) -> None:
        self.handle.write(json.dumps(record.to_json_dict(), ensure_ascii=False) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


class FilesSink:
    """A ``files`` shard: its part in OUT, read back first (what an earlier attempt finished stands)."""

    def __init__(self, out: str, number: int) -> None:
        self.root, self.number = Path(out), number
        self.done = shard_done(self.root, number)
        self.done_index = DoneIndex(self.root / part_name(number))
        self.part = _Part(self.root / part_name(number)) if self.done is None else None

    def add(self, record: FetchResult, held: Any, *, fetched: bool = True, append: bool = True) -> None:
        if append and self.part is not None:
            self.part.add(record)

    def finish(self, counts: dict[str, Any]) -> bool:
        write_json(self.root / done_name(self.number), counts)
        return True

    def close(self) -> None:
        self.done_index.close()
        if self.part is not None:
            self.part.close()
            self.part = None

    discard = close


class DatasetSink:
    """A ``webdataset`` or ``parquet`` shard, staged on local disk and published whole."""

    def __init__(self, opts: Options, out: str | Destination, number: int, columns: list[str]) -> None:
        self.out, self.number, self.format = out, number, opts.output_format
        self.done = shard_done(out, number)
        self.staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-"))
        self.done_index = DoneIndex(self.staging / "none")  # a shard cut short published nothing: all is redone
        self.writer = ShardWriter(opts.output_format, opts.shard_size, opts.caption_column, self.staging, number)
        self.part: _Part | None = None
        if self.done is None:
            self.writer.begin(columns)
            self.part = _Part(self.staging / "part.jsonl")

    def add(self, record: FetchResult, held: Any, *, fetched: bool = True, append: bool = True) -> None:
        if fetched:  # invalid lines and duplicates are only in the manifest, as in a local run
            self.writer.add(record, held)
        if append and self.part is not None:
            self.part.add(record)

    def finish(self, counts: dict[str, Any]) -> bool:
        """Close the shard's files and publish them, the counts last; False if the shard could not be finished."""
        assert self.part is not None
        self.writer.close()
        self.part.close()
        stats = self._staging_path("_stats.json")
        if not os.path.exists(stats):  # the writer gave up on it (a disk error): redone next run
            return False
        write_json(self.staging / "done.json", counts)
        data = DATA_SUFFIX[self.format]
        files = [(self._staging_path(suffix), shard_name(self.number, suffix)) for suffix in dict.fromkeys((".parquet", data))]
        publish([*files, (stats, shard_name(self.number, "_stats.json")),
                 (str(self.staging / "part.jsonl"), part_name(self.number)),
                 (str(self.staging / "done.json"), done_name(self.number))], self.out)
        return True

    def _staging_path(self, suffix: str) -> str:
        return str(self.staging / (shard_name(self.number, suffix) + ".tmp"))

    def close(self) -> None:
        try:
            self.writer.close()
            if self.part is not None:
                self.part.close()
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)

    discard = close
