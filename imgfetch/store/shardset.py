"""Dataset shards, in the parent: numbering them, and putting each in place once its records are written.

A shard is complete when its data file is in the output folder: ``NNNNN.tar`` (webdataset) or
``NNNNN.parquet`` (parquet). The parent counts the records it writes to the manifest for each shard
of this run. A worker closes a shard (full, or as it exits) before its last record leaves it, and
writes its stats file last; when the parent has written as many records as the stats file counts,
it renames the shard's files into the output folder: the stats, then the rows, then the data file.
So a complete shard holds exactly samples whose records are in the manifest. A shard whose records
were not all written (a stop that cut downloads short, a worker that died) is never put in place:
it goes with the run's temporary folder, and its URLs, whose records name a shard that does not
exist, are fetched again by the next run.

Numbers go on after the highest shard on disk or named by any manifest record, so a number is never
used twice, even for a shard that a killed run never completed.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Callable

from ..records import OK, FetchResult
from .shardfiles import read_stats, require_pyarrow
from .shards import BASE_FILE, DATA_SUFFIX, shard_name

log = logging.getLogger(__name__)
_SHARD_FILE = re.compile(r"^(\d{5,})(\.tar|\.parquet|_stats\.json)$")
_NUMBER = re.compile(r"^(\d+)")


def shard_number(name: object) -> int:
    """The number of a shard named in a record ('00012.tar' -> 12), or -1."""
    found = _NUMBER.match(name) if isinstance(name, str) else None
    return int(found.group(1)) if found else -1


def open_shards(root: Path, tmp: Path, output_format: str, shard_size: int, named: int) -> "ShardSet | None":
    """Get the output folder ready for this run's shards (None for files): the extra is there, what a killed
    run left half put in place is gone, and the workers' first number (after ``named``, the highest a
    manifest record names, and every shard on disk) is written in the run's temporary folder."""
    if output_format == "files":
        return None
    require_pyarrow(f"--output-format {output_format}")
    highest = max(named, _remove_incomplete(root, output_format))
    (tmp / BASE_FILE).write_text(f"{highest + 1}\n")
    return ShardSet(root, tmp, output_format, shard_size)


def _remove_incomplete(root: Path, output_format: str) -> int:
    """Remove the stats (and rows) of shards of this format whose data file is missing, a rename a kill cut
    short; return the highest shard number on disk."""
    highest, stats = -1, []
    with os.scandir(root) as entries:
        for entry in entries:
            found = _SHARD_FILE.match(entry.name)
            if found:
                highest = max(highest, int(found.group(1)))
                if found.group(2) == "_stats.json":
                    stats.append(found.group(1))
    suffix = DATA_SUFFIX[output_format]
    for number in stats:
        if (root / f"{number}{suffix}").exists():
            continue
        data = read_stats(str(root / f"{number}_stats.json"))
        if data is None or data.get("output_format") != output_format:
            continue  # not ours to judge: another format's shard, or not imgfetch's
        for name in (f"{number}.parquet", f"{number}_stats.json"):
            (root / name).unlink(missing_ok=True)
        log.info("removed the incomplete shard %s%s that an interrupted run left", number, suffix)
    return highest


class ShardSet:
    """This run's shards, from the parent's side: records written per shard, and putting shards in place."""

    def __init__(self, root: Path, tmp: Path, output_format: str, shard_size: int) -> None:
        self.root, self.tmp, self.output_format, self.shard_size = root, tmp, output_format, shard_size
        self.written: dict[int, list[int]] = {}  # shard number -> [ok records, records], until it is in place
        self.placed = 0
        self.on_placed: Callable[[int], None] | None = None  # a remote destination uploads what is put in place

    def recorded(self, record: FetchResult) -> None:
        """A record of this run was written to the manifest; a full shard is put in place at once."""
        if record.shard is None or record.skipped:
            return
        number = shard_number(record.shard)
        counts = self.written.setdefault(number, [0, 0])
        counts[0] += record.status == OK
        counts[1] += 1
        if counts[0] >= self.shard_size:
            self._place(number, final=False)

    def finish(self) -> None:
        """The workers have ended: put in place every shard whose records were all written."""
        for number in sorted(self.written):
            self._place(number, final=True)

    def _place(self, number: int, final: bool) -> None:
        ok, count = self.written[number]
        data = read_stats(self._temporary(number, "_stats.json"))
        if data is None or data.get("count") != count or data.get("successes") != ok:
            if final:
                log.warning("shard %s is not kept: %s; its %d URLs are fetched again next run",
                            shard_name(number, DATA_SUFFIX[self.output_format]),
                            "its worker did not finish it" if data is None else
                            f"{data.get('count', 0) - count} of its records were not written", count)
            return
        suffix = DATA_SUFFIX[self.output_format]
        del self.written[number]
        try:
            for part in ("_stats.json", ".parquet", suffix) if suffix != ".parquet" else ("_stats.json", suffix):
                os.rename(self._temporary(number, part), self.root / shard_name(number, part))
        except OSError as exc:
            log.warning("cannot put shard %s in place (%s); its URLs are fetched again next run",
                        shard_name(number, suffix), exc.strerror or exc)
            return
        self.placed += 1
        if self.on_placed is not None:
            self.on_placed(number)

    def _temporary(self, number: int, suffix: str) -> str:
        return str(self.tmp / (shard_name(number, suffix) + ".tmp"))
