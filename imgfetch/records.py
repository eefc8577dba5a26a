"""The plain records that flow from workers to the parent, and the canned ones, each built here once."""
from __future__ import annotations

import enum
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
SOURCE_COLUMN = "source"  # the column that names an entry's list file, when the list is a folder of lists
REPR_URL_CHARS = 80  # a longer URL is cut with '...' in a record's repr
_KILO = 1000  # decimal units, as file managers show sizes
RETRYABLE_STATUSES = (408, 429)  # request timeout, too many requests; and every 5xx
SERVER_ERRORS = 500  # statuses from here on may succeed on a retry


class ErrorKind(str, enum.Enum):
    """Why a URL failed: the ``error_kind`` of a failed or invalid record, decided from exception types.

    A member is its value, the string manifests and shards hold (``ErrorKind.DNS == "dns"``).
    ``meaning`` says what it covers (the README's table); ``permanent``: a re-run does not retry it
    under --retry-failed transient, since asking again gets the same answer (http: by its status).
    """

    _value_: str
    meaning: str
    permanent: bool

    def __new__(cls, value: str, meaning: str, permanent: bool = False) -> ErrorKind:
        member = str.__new__(cls, value)
        member._value_, member.meaning, member.permanent = value, meaning, permanent
        return member

    def __str__(self) -> str:  # and so format() and f-strings: the value, as a StrEnum's
        return self._value_

    HTTP = "http", "the server answered with an HTTP error status (404, 500, ...)"
    TIMEOUT = "timeout", "no answer in --timeout, or the URL took longer than --max-time / --deadline"
    CONNECTION = "connection", "refused, reset or closed before the whole body arrived"
    DNS = "dns", "the host name does not resolve, or the resolver did not answer in time"
    TLS = "tls", "the TLS handshake or certificate check failed"
    PROXY = "proxy", "the proxy refused or failed"
    PROTOCOL = "protocol", "a malformed HTTP answer (bad headers, conflicting lengths, bad encoding)"
    REDIRECT = "redirect", "a redirect loop, too many hops, or a hop to a refused scheme", True
    TOO_LARGE = "too_large", "over --max-bytes or --max-pixels", True
    EMPTY = "empty", "HTTP 200 with no body"
    NOT_IMAGE = "not_image", "the body is not an image", True
    CORRUPT = "corrupt", "an image that cannot be decoded", True
    FORMAT = "format", "an image in a format not in --formats", True
    FILTERED = "filtered", "an image refused by --min-image-size or --max-aspect-ratio", True
    DISALLOWED = "disallowed", "an X-Robots-Tag header opts the image out (--disallowed-header-directives)", True
    DISK = "disk", "the image could not be saved"
    DISK_FULL = "disk_full", "the image could not be saved: no space left (the run stops; re-run it after freeing space)"
    CRASHED = "crashed", "the worker process died twice while fetching this URL"
    INVALID = "invalid", "not a usable http(s) URL", True
    INTERNAL = "internal", "a bug in imgfetch (please report it)"


def transient_status(status: int) -> bool:
    """Whether an HTTP error status may go away on a retry: 408, 429 and 5xx."""
    return status in RETRYABLE_STATUSES or status >= SERVER_ERRORS


def permanent_failure(error_kind: str | None, http_status: int | None) -> bool:
    """Whether a failed record's cause stays the same when asked again: an HTTP error but 408, 429 and 5xx
    (404, 410, 403, ...), or an answer that is no usable image. Unknown kinds count as transient."""
    if error_kind == ErrorKind.HTTP:
        return http_status is not None and not transient_status(http_status)
    return error_kind in _PERMANENT_KINDS


_PERMANENT_KINDS = frozenset(kind for kind in ErrorKind if kind.permanent)


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
    error_kind: str | None = None  # an ErrorKind when status is failed or invalid (a str: the manifest's)
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
        data = {name: getattr(self, name) for name in MANIFEST_FIELDS}
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


MANIFEST_FIELDS = tuple(f.name for f in fields(FetchResult) if f.name not in ("columns", "abspath"))
RECORD_FIELDS = MANIFEST_FIELDS + (SOURCE_COLUMN,)  # what a manifest record holds besides the columns kept
_FLAT_FIELDS = frozenset(MANIFEST_FIELDS)


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
    return failed_record(task, f"worker crashed ({why})", ErrorKind.CRASHED)


def invalid_record(text: str, error: str | None, line: int | None = None,
                   columns: dict[str, str] | None = None) -> FetchResult:
    """A list entry (or fetch()'s URL) that is not a URL imgfetch can fetch; ``error`` says why."""
    return _about(text, normalized_key(text), line, INVALID, columns, error=error, error_kind=ErrorKind.INVALID)


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
