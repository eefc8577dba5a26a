"""A run on Dask, as shards: the list cut into slices of --shard-size entries, one Dask task each.

Slice N of the list is shard N, whatever ran it before, so a re-run finds each shard's outputs where the
first run put them (the README's "Resume" on Dask). The client reads the list, locks OUT and keeps its
temporary folder (the stop markers, files' temporary names); the shards write everything else, and upload
it themselves when OUT is object storage. A library caller also gets each shard's records, read from its
part once the shard has ended.
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any, Iterator

from ..options import Options
from ..records import FetchResult, record_from_flat
from ..sources import Entry
from ..store.files import OutputDir
from ..store.parts import part_name, shard_done
from ..store.reading import newest_records, part_records
from ..store.remote import Destination
from .shard_job import ShardJob


class ShardedRun:
    """One run's shards on Dask; ``stop()`` from a signal handler stops it as Ctrl-C does."""

    def __init__(self, out: OutputDir, opts: Options, destination: Destination | None = None) -> None:
        self.out, self.opts, self.destination = out, opts, destination
        self.client: Any = None
        self.stopped = False

    @property
    def worker_pids(self) -> set[int]:
        return self.client.worker_pids if self.client is not None else set()

    def stop(self) -> None:
        self.stopped = True
        if self.client is not None:
            self.client.stop()

    def results(self, entries: Iterator[Entry], records: bool) -> Iterator[dict[str, Any] | FetchResult]:
        """Each shard's counts as it ends (a dict), followed by its records when ``records`` is True; and while
        shards run, their progress (dicts with ``progress``: the shard's ``number`` and records ``done``)."""
        from .dask_shards import ShardClient

        self.out.open()
        try:
            assert self.out.tmp is not None
            self.client = ShardClient(self.opts, str(self.out.tmp), remote=self.destination is not None)
            if self.stopped:
                self.client.stop()
            try:
                done = None
                if self.destination is not None:  # the bucket, the credentials: one line before any download
                    done = self.client.survey(self.destination)
                    if done is None:
                        return  # stopped before any shard started
                for counts in self.client.run(self._jobs(entries, str(self.out.tmp), done)):
                    yield counts
                    if records and not counts.get("progress"):
                        yield from self._records(counts)
            finally:
                self.client.close()
        finally:
            self.out.close()

    def _jobs(self, entries: Iterator[Entry], tmp: str, listed: dict[int, dict[str, Any]] | None
              ) -> Iterator[ShardJob | dict[str, Any]]:
        """``listed``: the stats of the shards complete on the destination (None: OUT is a folder, looked at
        per shard)."""
        root = str(self.out.root)
        for number in itertools.count():
            chunk = tuple(itertools.islice(entries, self.opts.shard_size))
            if not chunk:
                return
            done = shard_done(root, number) if listed is None else listed.get(number)
            if done is not None:  # complete in an earlier run: skipped, no task
                yield {**done, "number": number, "complete": True, "earlier": True}
            else:
                yield ShardJob(self.opts, root, tmp, number, chunk, self.destination)

    def _records(self, counts: dict[str, Any]) -> Iterator[FetchResult]:
        """The shard's records, the newest per URL, from OUT or the destination (none if it has no part)."""
        part = part_name(counts["number"])
        if self.destination is not None:
            found = part_records(self.destination, part)
        else:
            found = newest_records(self.out.root / part) if (self.out.root / part).exists() else []
        for data in found:
            record = record_from_flat(data)
            record.skipped = record.skipped or bool(counts.get("earlier"))
            if record.path and self.destination is None:
                record.abspath = os.path.join(os.path.abspath(self.out.root), record.path)
            yield record


class ShardBar:
    """Moves a run's bar from shards' progress and their final counts: each record once, skipped ones off the total."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.shown: dict[int, int] = {}  # shard number -> records shown from its progress so far

    def progress(self, number: int, done: int) -> None:
        step = done - self.shown.get(number, 0)
        if step > 0 and self.bar is not None:
            self.shown[number] = done
            self.bar.add_counts(step)

    def finished(self, counts: dict[str, Any]) -> None:
        done = sum(counts.get("counts", {}).values())
        skipped = done if counts.get("earlier") else sum(counts.get("skipped", {}).values())
        shown = self.shown.pop(counts["number"], 0)
        if self.bar is not None:
            self.bar.add_counts(done - shown, skipped)


def parts_folder(root: Path) -> Path:
    """Where a run on Dask keeps its manifest: one part per shard."""
    return root / Path(part_name(0)).parent
