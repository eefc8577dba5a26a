"""Dataset shards, in the parent: numbering them, and putting each in place once its records are written.

A shard is complete when its data file is in the output folder: ``NNNNN.tar`` (webdataset) or
``NNNNN.parquet`` (parquet). A worker closes a shard (full, or as the run stops) before its last record
leaves it, and writes its stats file last; when the parent has written as many records as the stats file
counts, it renames the shard's files into the output folder: the stats, then the rows, then the data file.
So a complete shard holds exactly samples whose records are in the manifest. At the end of the run
(``settle``), a shard whose records and files do not agree is mended (shardmend.py).

Numbers go on after the highest shard on disk or named by any manifest record, so a number is never
used twice, even for a shard that a killed run never completed.
"""
from __future__ import annotations

import logging
import os
import re
import time
from array import array
from pathlib import Path
from typing import Any, Callable

from ..records import OK, FetchResult, record_from_flat
from .reading import record_at
from .shardfiles import check_pyarrow, read_stats
from .shardmend import drop_rows, lost_record, mend_tar, missing_records, write_rows
from .shards import BASE_FILE, DATA_SUFFIX, shard_name
from .sharedshard import shared_number

log = logging.getLogger(__name__)
SHARD_FILE = re.compile(r"^(\d{5,})(\.tar|\.parquet|_stats\.json)$")
_NUMBER = re.compile(r"^(\d+)")


def shard_number(name: object) -> int:
    """The number of a shard named in a record ('00012.tar' -> 12), or -1."""
    found = _NUMBER.match(name) if isinstance(name, str) else None
    return int(found.group(1)) if found else -1


def open_shards(root: Path, tmp: Path, output_format: str, shard_size: int, named: int,
                manifest: Path, caption_column: str | None) -> "ShardSet | None":
    """Get the output folder ready for this run's shards (None for files): the extra is there, what a killed
    run left half put in place is gone, and the workers' first number (after ``named``, the highest a
    manifest record names, and every shard on disk) is written in the run's temporary folder."""
    if output_format == "files":
        return None
    check_pyarrow(f"--output-format {output_format}")
    highest = max(named, _remove_incomplete(root, output_format))
    (tmp / BASE_FILE).write_text(f"{highest + 1}\n")
    return ShardSet(root, tmp, output_format, shard_size, manifest, caption_column)


def _remove_incomplete(root: Path, output_format: str) -> int:
    """Remove the stats (and rows) of shards of this format whose data file is missing, a rename a kill cut
    short; return the highest shard number on disk."""
    highest, stats = -1, []
    with os.scandir(root) as entries:
        for entry in entries:
            found = SHARD_FILE.match(entry.name)
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


class _Tally:
    """One shard's records written so far: ok ones, all, and where each is in the manifest."""

    def __init__(self) -> None:
        self.ok = self.count = 0
        self.offsets = array("q")


class ShardSet:
    """This run's shards, from the parent's side: records written per shard, and putting shards in place.

    ``manifest`` (where the records are written) and ``caption_column`` let ``settle`` mend a shard."""

    def __init__(self, root: Path, tmp: Path, output_format: str, shard_size: int, manifest: Path,
                 caption_column: str | None) -> None:
        self.root, self.tmp, self.output_format, self.shard_size = root, tmp, output_format, shard_size
        self.manifest, self.caption_column = manifest, caption_column
        self.written: dict[int, _Tally] = {}  # by shard number, until it is in place
        self.placed = 0
        self.on_placed: Callable[[int], None] | None = None  # a remote destination uploads what is put in place
        self.settled = False
        self.in_place: set[int] = set()  # numbers of this run's shards put in place
        self.older: dict[str, list[tuple[str, int]]] = {}  # an earlier shard -> (URL key, this run's shard number)

    def recorded(self, record: FetchResult, offset: int = -1) -> None:
        """A record of this run was written to the manifest (at ``offset``); a full shard is put in place at once."""
        if record.shard is None or record.skipped:
            return
        number = shard_number(record.shard)
        tally = self.written.setdefault(number, _Tally())
        tally.ok += record.status == OK
        tally.count += 1
        if offset >= 0:
            tally.offsets.append(offset)
        if tally.ok >= self.shard_size:
            self._put_in_place(number, final=False)

    def supersedes(self, record: FetchResult, previous: dict[str, Any] | None) -> None:
        """This run's record of a URL whose ``previous`` record (an earlier run's) had a row in another shard:
        once this run's shard is in place, that row goes (``finish``)."""
        older = previous.get("shard") if previous is not None else None
        if isinstance(older, str) and record.shard is not None and older != record.shard:
            self.older.setdefault(older, []).append((record.key, shard_number(record.shard)))

    def settle(self) -> list[FetchResult]:
        """The workers have ended: mend each shard whose files and records disagree (see the module docstring);
        return the records to write for that (each shard then agrees with its records)."""
        if self.settled:
            return []
        self.settled = True
        to_write: list[FetchResult] = []
        for number, tally in sorted(self.written.items()):
            data = read_stats(self._temporary(number, "_stats.json"))
            if data is not None and data.get("count") == tally.count:
                continue
            try:
                to_write += self._mend(number, tally, data is not None)
            except Exception as exc:  # noqa: BLE001 - a shard that cannot be mended is left out, as before
                log.warning("cannot mend shard %s: %s: %s", shard_name(number, DATA_SUFFIX[self.output_format]),
                            type(exc).__name__, exc)
        return to_write

    def _mend(self, number: int, tally: _Tally, closed: bool) -> list[FetchResult]:
        name = shard_name(number, DATA_SUFFIX[self.output_format])
        rows = self._temporary(number, ".parquet")
        with open(self.manifest, "rb") as handle:
            records = [record_from_flat(record_at(handle, offset), shard=name) for offset in tally.offsets]
        if closed:  # its worker closed it: the records the parent never read are in its rows
            missing = missing_records(rows, {record.key for record in records}, name, self.caption_column)
            log.info("shard %s: %d records its worker sent were never read; written from its rows", name, len(missing))
            return missing
        if self.output_format != "webdataset":
            log.warning("shard %s is lost with its worker process; its %d URLs are fetched again next run",
                        name, tally.count)
            return [lost_record(record) for record in records if record.status == OK]
        found = mend_tar(self._temporary(number, ".tar"), {record.sample for record in records if record.sample})
        lost = [record for record in records if record.status == OK and record.sample not in found]
        kept = [record for record in records if record.status != OK or record.sample in found]
        write_rows(rows, self._temporary(number, "_stats.json"), name, self.output_format, kept, self.caption_column,
                   time.time())
        tally.ok, tally.count = sum(record.status == OK for record in kept), len(kept)
        why = "the quarantine processes' shared shard" if number == shared_number(self.tmp) else "its worker process died"
        log.info("shard %s (%s): kept the %d samples whose records were written", name, why, tally.ok)
        return [lost_record(record) for record in lost]

    def finish(self) -> None:
        """The workers have ended: put in place every shard whose records were all written; then take the rows
        that this run's shards replace out of earlier shards."""
        for number in sorted(self.written):
            self._put_in_place(number, final=True)
        for older, keys in sorted(self.older.items()):
            replaced = {key for key, number in keys if number in self.in_place}
            number = shard_number(older)
            rows = self.root / shard_name(number, ".parquet")
            if not replaced or number in self.in_place or not (self.root / older).exists() or not rows.exists():
                continue
            try:
                dropped = drop_rows(rows, self.root / shard_name(number, "_stats.json"), replaced, self.tmp)
            except Exception as exc:  # noqa: BLE001 - the older rows stay: read_manifest still gives one per URL
                log.warning("cannot take the %d rows fetched again out of %s: %s", len(replaced), rows.name, exc)
                continue
            log.debug("%s: %d rows fetched again by this run taken out", rows.name, dropped)

    def _put_in_place(self, number: int, final: bool) -> None:
        tally = self.written[number]
        ok, count = tally.ok, tally.count
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
        self.in_place.add(number)
        if self.on_placed is not None:
            self.on_placed(number)

    def _temporary(self, number: int, suffix: str) -> str:
        return str(self.tmp / (shard_name(number, suffix) + ".tmp"))
