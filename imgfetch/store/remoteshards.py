"""A dataset's shards on a remote destination (-o s3://...): published from the local work folder, read back to resume.

The README's "Object storage" says the order of uploads and how resume reads the destination. Here, a shard
number the work folder's manifest names that it neither uploaded nor read back (KNOWN_FILE) is a clash:
this folder's run lost that shard (a kill before its upload) and another machine has since published its
own under the number, so a record naming it stands only for a URL of that shard's rows.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from ..errors import OutputError
from ..records import FetchResult
from .keys import KeySet
from .remote import PARTIAL, Destination
from .shardfiles import LEFT_OUT, RENAMED, record_of_row, require_pyarrow
from .shards import DATA_SUFFIX, shard_name
from .shardset import SHARD_FILE

log = logging.getLogger(__name__)
UPLOAD_THREADS = 2
_STATS = "_stats.json"
KNOWN_FILE = "shards-known.txt"  # in the work folder: "NAME ours|read|clash" for each shard its manifest holds
# The row columns a record is read back from (never the image or kept columns); the row's key is the sample key.
_RECORD_COLUMNS = ("key", *(RENAMED.get(f.name, f.name) for f in dataclasses.fields(FetchResult) if f.name not in LEFT_OUT))


class RemoteShards:
    """This run's shards on the destination: what is complete there, uploads, and records from its rows."""

    def __init__(self, destination: Destination, root: Path, output_format: str) -> None:
        self.destination, self.root, self.output_format = destination, root, output_format
        self.suffix = DATA_SUFFIX[output_format]
        self.parts = (self.suffix, ".parquet", _STATS) if self.suffix != ".parquet" else (self.suffix, _STATS)
        self.complete: set[str] = set()  # data file names of the shards complete on the destination
        self.highest = -1  # the highest shard number on the destination
        self.known = self._load_known()  # shard name -> ours, read or clash (see the module docstring)
        self.clash_keys = KeySet()  # the URL keys of the rows of clashing shards: their records stand
        self._lock = threading.Lock()
        self._uploads: list[tuple[int, Future[None]]] = []
        self._pool: ThreadPoolExecutor | None = None

    def _load_known(self) -> dict[str, str]:
        try:
            lines = (self.root / KNOWN_FILE).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return {}
        return dict(line.split(" ", 1) for line in lines if line.count(" ") == 1)

    def _note(self, name: str, how: str) -> None:
        with self._lock:
            self.known[name] = how
            with open(self.root / KNOWN_FILE, "a", encoding="utf-8") as handle:
                handle.write(f"{name} {how}\n")

    def open(self) -> None:
        """Check the destination (one line if it cannot be used), publish the shards an earlier run left in
        the work folder, and list what is complete there."""
        self.destination.check()
        for number in self._not_uploaded():
            log.info("uploading shard %s, left in %s by an earlier run", shard_name(number, self.suffix), self.root)
            self._publish(number)
        names = set(self.destination.list())
        for name in names:
            found = SHARD_FILE.match(name)
            if found:
                self.highest = max(self.highest, int(found.group(1)))
        stats = {name[:-len(_STATS)] for name in names if SHARD_FILE.match(name) and name.endswith(_STATS)}
        self.complete |= {number + self.suffix for number in stats if number + self.suffix in names}
        self._remove_incomplete(names, stats)

    def _remove_incomplete(self, names: set[str], stats: set[str]) -> None:
        """Remove this format's data files and rows whose stats are missing: a publish that a kill cut short
        (so a reader that globs the tars never meets a shard whose rows and records are not all there)."""
        for name in sorted(names):
            if self._half_published(name, stats):
                self.destination.remove(name)
                log.info("removed %s from %s: an interrupted upload left it without its stats",
                         name, self.destination.url)

    def _half_published(self, name: str, stats: set[str]) -> bool:
        found = SHARD_FILE.match(name.removesuffix(PARTIAL))
        if found is None:
            return False  # not a shard's: never touched
        if name.endswith(PARTIAL):
            return True  # a copy into a file:// destination that a kill cut short
        return found.group(2) in self.parts and found.group(2) != _STATS and found.group(1) not in stats

    def _not_uploaded(self) -> list[int]:
        """Shards put in place in the work folder and not uploaded: their stats and data file are there."""
        numbers = []
        for path in self.root.glob("*" + _STATS):
            found = SHARD_FILE.match(path.name)
            if found and all((self.root / shard_name(int(found.group(1)), part)).exists() for part in self.parts):
                numbers.append(int(found.group(1)))
        return sorted(numbers)

    def placed(self, number: int) -> None:
        """A shard was put in place in the work folder: upload it in the background."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="imgfetch-upload")
        self._uploads.append((number, self._pool.submit(self._publish, number)))

    def _publish(self, number: int) -> None:
        for part in self.parts:  # the stats last: the shard is complete on the destination once they are there
            name = shard_name(number, part)
            self.destination.publish(self.root / name, name)
        for part in self.parts:  # the data file first: what is left of a cut removal is not a staged shard
            (self.root / shard_name(number, part)).unlink(missing_ok=True)
        self._note(shard_name(number, self.suffix), "ours")
        self.complete.add(shard_name(number, self.suffix))

    def in_place(self, name: str, key: str | None) -> bool:
        """Whether the shard a record (of URL key ``key``) names is complete on the destination and holds
        that record's row."""
        if name not in self.complete:
            return False
        return self.known.get(name) != "clash" or key is not None and bytes.fromhex(key) in self.clash_keys

    def finish(self) -> None:
        """Wait for the uploads; OutputError (one line) if a shard could not be uploaded."""
        self.close()
        failed = [(number, upload.exception()) for number, upload in self._uploads if upload.exception() is not None]
        self._uploads = []
        if failed:
            number, exc = failed[0]
            more = f" (and {len(failed) - 1} more shards)" if len(failed) > 1 else ""
            raise OutputError(f"{exc}{more}; shard {shard_name(number, self.suffix)}'s files are kept in {self.root} "
                              "and uploaded when the same command runs again")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def adopt(self, named: set[int], write: Callable[[FetchResult], None]) -> int:
        """Write a record for each row of the complete shards whose records the local manifest does not hold
        (``named``: the shard numbers its records name); how many."""
        count = 0
        for name in sorted(self.complete):
            how = self.known.get(name)
            if how == "clash":
                self._read(name, None, clash=True)  # the keys whose records stand
            elif how is None:
                how = "clash" if int(name[: -len(self.suffix)]) in named else "read"
                count += self._read(name, write, clash=how == "clash")
                self._note(name, how)  # after its records: a kill before this reads the shard again
        if count:
            log.info("%d records read back from the shards in %s", count, self.destination.url)
        return count


    def _read(self, name: str, write: Callable[[FetchResult], None] | None, *, clash: bool) -> int:
        """Read a shard's rows: write a record for each (``write``), and note their keys for a clash."""
        pq = require_pyarrow(f"-o {self.destination.url}")
        count = 0
        with self.destination.open(name[: -len(self.suffix)] + ".parquet") as handle:
            rows = pq.ParquetFile(handle)
            wanted = _RECORD_COLUMNS if write is not None else ("url_key",)
            columns = [column for column in rows.schema_arrow.names if column in wanted]
            for batch in rows.iter_batches(columns=columns):
                for row in batch.to_pylist():
                    if write is not None:
                        write(record_of_row(row, name))
                    if clash:
                        self.clash_keys.add(bytes.fromhex(row["url_key"]))
                    count += 1
        return count
