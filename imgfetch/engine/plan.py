"""The plan: each entry becomes a Task to fetch, or a ready record (invalid, duplicate, skipped)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, NamedTuple

from ..records import (
    COPY_FACTS,
    DUPLICATE,
    FAILED,
    FAILURE_FACTS,
    FILE_FACTS,
    OK,
    FetchResult,
    Task,
    duplicate_record,
    invalid_record,
    permanent_failure,
    skipped_record,
)
from ..sources import Entry
from ..store.files import file_matches
from ..store.keys import KeySet
from ..store.manifest import DoneIndex
from ..urls import normalized_key


class Planned(NamedTuple):
    """What to do with one entry: fetch it (a Task), or hand on a ready record."""

    item: Task | FetchResult
    full_url: str | None  # the URL in full, credentials included (for the errors file); None if not one
    append: bool = True   # False: the manifest already says all this record says


class Planner:
    """Turns entries into tasks, or into ready records: invalid, duplicate, and skipped (done by an earlier
    run, or failed in one and not retried).

    ``duplicates``: a URL seen earlier in this list is recorded as a duplicate (a run over one list);
    otherwise every entry is planned on its own (the Downloader, which hands one fetch's record to every
    request for the URL). ``repeat``: a skipped record is appended to the manifest again (a run, whose
    manifest has a record per line of its list), except a failure not retried whose earlier record has
    this entry's line and columns, which says nothing new; otherwise skipped records are never appended.
    """

    def __init__(self, done: DoneIndex, root: Path, retry_failed: str, *, duplicates: bool = True,
                 repeat: bool = True, shard_in_place: Callable[[str, str | None], bool] | None = None) -> None:
        self.done, self.root, self.retry_failed, self.repeat = done, root, retry_failed, repeat
        self.shard_in_place = shard_in_place or (lambda name, key: file_matches(root, name, None))
        self.seen = KeySet() if duplicates else None

    def plan(self, entry: Entry) -> Planned:
        if entry.url is None:
            return Planned(invalid_record(entry.raw, entry.error, entry.line, entry.columns), None)
        key = normalized_key(entry.url)
        if self.seen is not None and not self.seen.add(bytes.fromhex(key)):
            return Planned(duplicate_record(entry.url, key, entry.line, entry.columns), None)
        previous = self.done.get(key)
        facts = _standing_facts(previous, self.root, self.retry_failed, self.shard_in_place)
        if previous is not None and facts:
            failed = previous["status"] == FAILED
            record = skipped_record(entry.url, key, entry.line, entry.columns, previous, facts)
            return Planned(record, entry.url if failed else None,
                           self.repeat and not (failed and _same_entry(previous, entry)))
        return Planned(Task(entry.url, key, entry.line, entry.columns, previous.get("path") if previous else None),
                       entry.url)


def _standing_facts(previous: dict[str, Any] | None, root: Path, retry_failed: str,
                    shard_in_place: Callable[[str, str | None], bool]) -> tuple[str, ...]:
    """The facts this run repeats from the earlier record, if it stands: an ok one whose file (or shard) is
    still there, a copy of an earlier image (--dedup), or a failure --retry-failed does not retry; () if the
    URL is to be fetched."""
    if previous is None:
        return ()
    if previous["status"] == OK:
        if not previous.get("path"):  # a dataset sample: it stands while its shard is in place
            return FILE_FACTS if shard_in_place(previous["shard"], previous.get("key")) else ()
        return FILE_FACTS if file_matches(root, previous["path"], previous["bytes"]) else ()
    if previous.get("shard") and not shard_in_place(previous["shard"], previous.get("key")):
        return ()  # its dataset row went with a shard that a kill or a stop never completed: fetch it again
    if previous["status"] == DUPLICATE:
        return COPY_FACTS  # a copy of an earlier image (--dedup) stays one
    permanent = permanent_failure(previous.get("error_kind"), previous.get("http_status"))
    return FAILURE_FACTS if retry_failed == "none" or (retry_failed == "transient" and permanent) else ()


def _same_entry(previous: dict[str, Any], entry: Entry) -> bool:
    """Whether the earlier record has this entry's line number and kept columns."""
    return previous.get("line") == entry.line and all(previous.get(k) == v for k, v in entry.columns.items())
