"""The plain records that flow from workers to the parent, and the canned ones (cancelled, failed, invalid,
duplicate, skipped, read back), each built here once: URLs masked, keys normalised, in one place.

May import: imgfetch.urls
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from .urls import mask_url, normalized_key

OK, FAILED, INVALID, DUPLICATE = "ok", "failed", "invalid", "duplicate"
STATUSES = (OK, FAILED, INVALID, DUPLICATE)
SKIPPED = "skipped"  # what older manifests say of a URL done earlier; read back as ok with skipped=True
CANCELLED = "cancelled"  # stopped by Ctrl-C/SIGTERM mid-download: never recorded, fetched again next run
# The fields of a finished record that a skipped record repeats: the file and what fetching it found.
FILE_FACTS = ("path", "shard", "sample", "bytes", "sha256", "format", "width", "height", "http_status", "final_url",
              "fetched_at", "original_width", "original_height", "phash")
# The fields of a failed record that a skipped one (a failure not retried) repeats.
FAILURE_FACTS = ("http_status", "final_url", "error", "error_kind", "fetched_at", "shard")
# The fields of a duplicate of an earlier image (--dedup) that a skipped one repeats: what was fetched, and the first.
COPY_FACTS = ("bytes", "sha256", "format", "width", "height", "http_status", "final_url", "error", "fetched_at",
              "original_width", "original_height", "phash", "dup_of")
REPR_URL_CHARS = 80  # a longer URL is cut with '...' in a record's repr
_KILO = 1000  # decimal units, as file managers show sizes


@dataclass(frozen=True)
class Task:
    """One URL to fetch, as the parent hands it to a worker."""

    url: str                       # normalised, credentials included
    key: str                       # url_key(url)
    line: int
    columns: dict[str, str] = field(default_factory=dict)
    owned_path: str | None = None  # a path this folder's manifest already records for this URL
    suspect: int = 0               # how many pool crashes this task was in flight for


@dataclass
class FetchResult:
    """What happened to one URL. Fields that do not apply are None."""

    url: str                       # credentials masked
    key: str
    line: int | None
    status: str
    # True when this run did not fetch the URL: the record repeats an earlier run's outcome (ok: the file is
    # still there; failed: a failure --retry-failed did not retry).
    skipped: bool = False
    path: str | None = None        # relative to the output folder, with '/' separators
    bytes: int | None = None
    sha256: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    http_status: int | None = None
    final_url: str | None = None
    error: str | None = None
    error_kind: str | None = None  # one of net.failures.ERROR_KINDS when status is failed or invalid
    attempts: int | None = None
    elapsed_s: float | None = None
    pid: int | None = None
    fetched_at: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    # Dataset outputs (--output-format webdataset or parquet): the shard file (relative to the output folder) whose
    # window this URL was processed in, and for an image, its sample key there (files KEY.jpg, KEY.json, ...).
    shard: str | None = None
    sample: str | None = None
    # The file's absolute path, filled in by the parent (download, iter_download, fetch); not in the manifest.
    abspath: str | None = field(default=None, compare=False)
    original_width: int | None = None   # the image as fetched; width and height are what was saved (--resize)
    original_height: int | None = None
    dup_of: str | None = None      # status duplicate under --dedup: the key of the first URL with this image
    phash: str | None = None       # --dedup phash:D: the saved image's 64-bit perceptual hash, 16 hex digits

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_json_dict(self) -> dict[str, Any]:
        """The manifest form: kept columns flattened into the record."""
        # Not dataclasses.asdict: its deep copy of every field cost more than the rest of writing a record.
        data = {name: getattr(self, name) for name in _JSON_FIELDS}
        data.update(self.columns)
        return data

    def __repr__(self) -> str:
        """Short: status, line, file and size, or the URL and the error."""
        line = (" (skipped)" if self.skipped else "") + (f" line {self.line}" if self.line is not None else "")
        where = self.path or (f"{self.shard}:{self.sample}" if self.sample else None)  # a file, or a shard's sample
        if where and self.status == OK:
            size = f" {human_bytes(self.bytes)}" if self.bytes is not None else ""
            image = f" {self.format} {self.width}x{self.height}" if self.format and self.width else ""
            return f"<FetchResult {self.status}{line} {where!r}{size}{image}>"
        cut = REPR_URL_CHARS - len("...")
        url = self.url if len(self.url) <= REPR_URL_CHARS else self.url[:cut] + "..."
        error = f": {self.error}" if self.error else ""
        return f"<FetchResult {self.status}{line} {url!r}{error}>"


_JSON_FIELDS = tuple(f.name for f in fields(FetchResult) if f.name not in ("columns", "abspath"))
_FLAT_FIELDS = frozenset(_JSON_FIELDS)


def _about(url: str, key: str, line: int | None, status: str, columns: dict[str, str] | None,
           **facts: Any) -> FetchResult:
    """A record of ``url`` (masked here: credentials never reach a record)."""
    return FetchResult(url=mask_url(url), key=key, line=line, status=status,
                       columns={} if columns is None else columns, **facts)


def cancelled_record(task: Task) -> FetchResult:
    """A task the run stopped before it ended: never recorded, fetched again next run. Its error is the one
    net/fetcher.py gives a download cut short."""
    return _about(task.url, task.key, task.line, CANCELLED, task.columns, error=CANCELLED)


def failed_record(task: Task, error: str | None = None, error_kind: str | None = None, **facts: Any) -> FetchResult:
    """The task failed: ``error`` says why, in a line a person reads; ``error_kind`` sorts it (net/failures.py)."""
    return _about(task.url, task.key, task.line, FAILED, task.columns, error=error, error_kind=error_kind, **facts)


def crashed_record(task: Task, why: str) -> FetchResult:
    """The task's worker process died while fetching it (``why``: how the backend knows)."""
    return failed_record(task, f"worker crashed ({why})", "crashed")


def invalid_record(text: str, error: str | None, line: int | None = None,
                   columns: dict[str, str] | None = None) -> FetchResult:
    """A list entry (or fetch()'s URL) that is not a URL imgfetch can fetch; ``error`` says why."""
    return _about(text, normalized_key(text), line, INVALID, columns, error=error, error_kind="invalid")


def duplicate_record(url: str, key: str, line: int, columns: dict[str, str]) -> FetchResult:
    """A URL seen earlier in the same list: recorded, not fetched again."""
    return _about(url, key, line, DUPLICATE, columns, error="same URL as an earlier line")


def skipped_record(url: str, key: str, line: int, columns: dict[str, str], earlier: Mapping[str, Any],
                   facts: tuple[str, ...]) -> FetchResult:
    """A URL an earlier run settled: its status and the ``facts`` (e.g. FILE_FACTS) of its ``earlier`` record."""
    return _about(url, key, line, earlier["status"], columns, skipped=True, **{name: earlier.get(name) for name in facts})


def record_from_flat(data: Mapping[str, Any], **fixed: Any) -> FetchResult:
    """A flat record (a manifest line: the fields, with kept columns beside them) as the FetchResult it was
    written from; ``fixed`` fields override what it says."""
    values = {name: value for name, value in data.items() if name in _FLAT_FIELDS}
    values.setdefault("line", None)
    columns = {name: value for name, value in data.items() if name not in _FLAT_FIELDS}
    return FetchResult(**{**values, "columns": columns, **fixed})


def human_bytes(size: int | None) -> str:
    """15320 -> '15.3 kB' (decimal units, as file managers show them)."""
    if size is None:
        return ""
    amount: float = size
    for unit in ("B", "kB", "MB", "GB"):
        if amount < _KILO or unit == "GB":
            return f"{size} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= _KILO
    return ""
