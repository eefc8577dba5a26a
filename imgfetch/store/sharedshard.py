"""The one shard that a run's quarantine processes share (--output-format webdataset).

A quarantine process (engine/pool.py) retries one suspect URL and exits. Rather than a shard of one sample
each, they append their samples to one shard of the run, one process at a time (a file lock): its tar in the
run's temporary folder, with a state file beside it (the shard's number, where its last whole sample ends,
how many samples it holds). An appender first cuts the tar back to that end, so a process killed midway leaves
nothing behind. No process closes this shard: at the end of the run the parent mends it like the shard of a
worker that died (shardmend.py), keeping the samples whose records were written, and writes its rows and stats
from the manifest. The image bytes go from the quarantine process to the tar, never through the parent.
"""
from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from ..records import OK, FetchResult
from .shardfiles import BLOCK, json_bytes, member_header, row_of
from .shards import as_failed, claim_number, shard_name

STATE_FILE = "shared-shard"  # in the run's temporary folder: "NUMBER END COUNT"
LOCK_FILE = "shared-shard.lock"


def shared_number(tmp: Path) -> int | None:
    """The number of the run's shared shard, if a quarantine process started it."""
    try:
        return int((Path(tmp) / STATE_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class SharedShardWriter:
    """A quarantine process's shard writer, with ShardWriter's ``add`` and ``close``: see the module docstring."""

    def __init__(self, shard_size: int, caption_column: str | None, tmp: Path) -> None:
        self.caption, self.tmp = caption_column, Path(tmp)
        self.digits = len(str(shard_size - 1))

    def add(self, record: FetchResult, held: tuple[bytes, str] | None) -> None:
        """File the record in the shared shard, and append its sample; a failure to write makes it a failed record."""
        try:
            with open(self.tmp / LOCK_FILE, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released as the file closes
                number, end, count = self._state()
                record.shard = shard_name(number, ".tar")
                if record.status == OK and held is not None:
                    record.sample = f"{number:05d}{count:0{self.digits}d}"
                    end = self._append(number, end, record, held)
                    self._save(number, end, count + 1)
        except Exception as exc:  # noqa: BLE001 - never a dead thread: the URL fails, the next run fetches it
            as_failed(record, record.shard or "the quarantine shard", exc)

    def _state(self) -> tuple[int, int, int]:
        try:
            fields = ((self.tmp / STATE_FILE).read_text().split() + ["", "", ""])[:3]
            return int(fields[0]), int(fields[1]), int(fields[2])
        except (OSError, ValueError):
            first = claim_number(self.tmp, 0)
            self._save(first, 0, 0)
            return first, 0, 0

    def _append(self, number: int, end: int, record: FetchResult, held: tuple[bytes, str]) -> int:
        body, extension = held
        assert record.sample is not None
        members = [(record.sample + extension, body), (record.sample + ".json", json_bytes(row_of(record, self.caption)))]
        if self.caption is not None:
            members.append((record.sample + ".txt", record.columns.get(self.caption, "").encode("utf-8")))
        mtime = int(time.time())
        fd = os.open(self.tmp / (shard_name(number, ".tar") + ".tmp"), os.O_RDWR | os.O_CREAT, 0o644)
        with os.fdopen(fd, "r+b") as handle:
            handle.truncate(end)  # what a process killed midway left
            handle.seek(end)
            for name, data in members:
                handle.write(member_header(name, len(data), mtime))
                handle.write(data)
                handle.write(b"\0" * (-len(data) % BLOCK))
            return handle.tell()

    def _save(self, number: int, end: int, count: int) -> None:
        state = self.tmp / STATE_FILE
        temporary = state.with_name(STATE_FILE + ".new")
        temporary.write_text(f"{number} {end} {count}\n")
        os.replace(temporary, state)

    def close(self) -> None:
        """Nothing to close: the parent ends the shared shard."""
