"""The plan: each entry becomes a Task to fetch, or a ready record (invalid, duplicate, skipped)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from ..net.failures import permanent_failure
from ..records import DUPLICATE, FAILED, FAILURE_FACTS, FILE_FACTS, INVALID, OK, FetchResult, Task
from ..sources import Entry
from ..store.files import file_matches
from ..store.keys import KeySet
from ..store.manifest import DoneIndex
from ..urls import mask_url, normalized_key


def plan_tasks(entries: Iterator[Entry], done: DoneIndex, root: Path, full_urls: dict[str, str] | None,
          retry_failed: str, unchanged: set[str]) -> Iterator[Task | FetchResult]:
    """Turn entries into tasks, or into ready records: invalid, duplicate, and skipped (done by an earlier
    run, or failed in one and not retried). ``unchanged`` gets the keys of skipped failures whose earlier
    record has this run's line and columns: the manifest needs no new line for them."""
    seen = KeySet()
    for entry in entries:
        if entry.url is None:
            yield FetchResult(url=mask_url(entry.raw), key=normalized_key(entry.raw), line=entry.line, status=INVALID,
                              error=entry.error, error_kind="invalid", columns=entry.columns)
            continue
        key = normalized_key(entry.url)
        masked = mask_url(entry.url)
        if not seen.add(bytes.fromhex(key)):
            yield FetchResult(url=masked, key=key, line=entry.line, status=DUPLICATE,
                              error="same URL as an earlier line", columns=entry.columns)
            continue
        previous = done.get(key)
        facts = _standing_facts(previous, root, retry_failed)
        if previous is not None and facts:
            if full_urls is not None and previous["status"] == FAILED:
                full_urls[key] = entry.url  # the errors file lists every URL that ends this run failed
            if previous["status"] == FAILED and _same_entry(previous, entry):
                unchanged.add(key)
            yield FetchResult(url=masked, key=key, line=entry.line, status=previous["status"], skipped=True,
                              columns=entry.columns, **{name: previous.get(name) for name in facts})
            continue
        if full_urls is not None:
            full_urls[key] = entry.url
        yield Task(entry.url, key, entry.line, entry.columns, previous.get("path") if previous else None)


def _standing_facts(previous: dict[str, Any] | None, root: Path, retry_failed: str) -> tuple[str, ...]:
    """The facts this run repeats from the earlier record, if it stands: an ok one whose file is still
    there, or a failure --retry-failed does not retry; () if the URL is to be fetched."""
    if previous is None:
        return ()
    if previous["status"] == OK:
        if not previous.get("path"):  # a dataset sample: it stands while its shard is in place
            return FILE_FACTS if file_matches(root, previous["shard"], None) else ()
        return FILE_FACTS if file_matches(root, previous["path"], previous["bytes"]) else ()
    if previous.get("shard") and not file_matches(root, previous["shard"], None):
        return ()  # its dataset row went with a shard that a kill or a stop never completed: fetch it again
    permanent = permanent_failure(previous.get("error_kind"), previous.get("http_status"))
    return FAILURE_FACTS if retry_failed == "none" or (retry_failed == "transient" and permanent) else ()


def _same_entry(previous: dict[str, Any], entry: Entry) -> bool:
    """Whether the earlier record has this entry's line number and kept columns."""
    return previous.get("line") == entry.line and all(previous.get(k) == v for k, v in entry.columns.items())
