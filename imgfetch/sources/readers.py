"""Entries from each kind of URL list: text, CSV or TSV, JSON Lines, and any iterable.

Per-URL problems become invalid :class:`Entry` records; over-long lines and records are
counted, never held whole, and only their first characters are kept.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InputError, InvalidURL
from ..urls import normalize_url
from .csvlines import CsvLines
from .streams import RAW_PREFIX_CHARS, guard, numbered_lines

# No fetchable URL is longer: servers refuse request lines above 8-64 KiB (nginx and Apache
# 8 KiB by default, IIS 16 KiB, the largest common setting 64 KiB), browsers stop at 2 MiB.
# Long signed URLs (S3 with a session token) stay under 4 KiB.
MAX_URL_CHARS = 65_536
# A CSV or JSON Lines record (URL plus kept columns such as captions) longer than this is
# invalid. It is csv's default field_size_limit(): below it, csv itself never refuses a field.
MAX_RECORD_CHARS = 131_072
SHOWN_COLUMNS = 30  # of a header's column names, listed when the URL column is not among them
_UNDECODABLE = "undecodable bytes (not UTF-8)"


@dataclass(frozen=True, slots=True)
class Entry:
    """One record of a URL list; ``url`` is None (and ``error`` says why) when invalid."""

    line: int
    raw: str
    url: str | None
    error: str | None
    columns: dict[str, str]


# --------------------------------------------------------------------------- one entry

def _too_long(line: int, head: str, length: int, limit: int, columns: dict[str, str], what: str = "line") -> Entry:
    return Entry(line, head[:RAW_PREFIX_CHARS], None, f"{what} too long: {length:,} characters (limit {limit:,})", columns)


def _make(line: int, raw: str, columns: dict[str, str], error: str | None = None) -> Entry:
    if error is None and len(raw) > MAX_URL_CHARS:
        return _too_long(line, raw, len(raw), MAX_URL_CHARS, columns, "URL")
    if error is None:
        try:
            return Entry(line, raw, normalize_url(raw), None, columns)
        except InvalidURL as e:
            error = str(e)
    return Entry(line, raw, None, error, columns)


def _clean(text: str) -> str:
    """Surrogate-escaped text → text with U+FFFD for undecodable bytes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _column_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False)
    return value if isinstance(value, str) else str(value)


def _from_mapping(line: int, obj: Mapping[str, Any], key: str, keep: tuple[str, ...],
                  fallback: str) -> Entry:
    columns = {k: _column_text(obj.get(k)) for k in keep}
    value = obj.get(key)
    if not isinstance(value, str):
        return Entry(line, fallback, None, f"no '{key}' key", columns)
    return _make(line, value, columns)


# --------------------------------------------------------------------------- text, JSON Lines

def txt_entries(stream: io.BufferedReader, name: str) -> Generator[Entry, None, None]:
    """One URL a line; blank lines and ``#`` comments skipped."""
    for number, data, length in numbered_lines(stream, name, MAX_URL_CHARS):
        text = data.decode("utf-8", "replace").strip()
        if text.startswith("#"):
            continue
        if length is not None:
            yield _too_long(number, text, length, MAX_URL_CHARS, {})
        elif text:
            try:
                yield _make(number, data.decode("utf-8").strip(), {})
            except UnicodeDecodeError:
                yield _make(number, text, {}, _UNDECODABLE)


def jsonl_entries(stream: io.BufferedReader, name: str, key: str,
                  keep: tuple[str, ...]) -> Generator[Entry, None, None]:
    """One JSON object a line, its URL under ``key``; blank lines skipped."""
    for number, data, length in numbered_lines(stream, name, MAX_RECORD_CHARS):
        data = data.strip()
        if length is not None:
            empty = dict.fromkeys(keep, "")
            yield _too_long(number, data.decode("utf-8", "replace"), length, MAX_RECORD_CHARS, empty)
        elif data:
            yield _jsonl_entry(number, data, key, keep)


def _jsonl_entry(number: int, data: bytes, key: str, keep: tuple[str, ...]) -> Entry:
    empty = dict.fromkeys(keep, "")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Entry(number, data.decode("utf-8", "replace"), None, _UNDECODABLE, empty)
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return Entry(number, text, None, "not valid JSON", empty)
    if not isinstance(obj, dict):
        return Entry(number, text, None, "not a JSON object", empty)
    return _from_mapping(number, obj, key, keep, text)


# --------------------------------------------------------------------------- CSV, TSV

def csv_entries(stream: io.BufferedReader, name: str, delimiter: str, url_column: str,
                keep: tuple[str, ...]) -> Generator[Entry, None, None]:
    """Read the header now (eagerly) and return a generator over the data records."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    lines = CsvLines(text, delimiter, min(MAX_RECORD_CHARS, csv.field_size_limit()))
    reader = csv.reader(lines, delimiter=delimiter)
    names = _csv_header(reader, lines, name)
    url_index = _find_column(names, url_column, name)
    keep_index = {k: _find_column(names, k, name) for k in keep}
    return _csv_records(reader, lines, name, url_index, keep_index)


def _csv_header(reader: Any, lines: CsvLines, name: str) -> list[str]:
    """The column names: the first record that is not blank."""
    with guard(name):
        for header in reader:
            length = lines.end_record()
            if length:
                raise InputError(f"{name}: header row too long ({length:,} characters, "
                                 f"limit {lines.limit:,})")
            if any(f.strip() for f in header):
                return [_clean(h).strip() for h in header]
    raise InputError(f"{name}: empty file (no header row)")


def _find_column(names: list[str], wanted: str, name: str) -> int:
    if wanted in names:
        return names.index(wanted)
    folded = [i for i, n in enumerate(names) if n.casefold() == wanted.casefold()]
    if len(folded) == 1:
        return folded[0]
    shown = ", ".join(names[:SHOWN_COLUMNS]) + (", ..." if len(names) > SHOWN_COLUMNS else "")
    raise InputError(f"{name}: no column '{wanted}' in the header (columns: {shown})")


def _csv_records(reader: Any, lines: CsvLines, name: str, url_index: int,
                 keep_index: dict[str, int]) -> Generator[Entry, None, None]:
    """The data records after the header; blank ones skipped."""
    empty, record = dict.fromkeys(keep_index, ""), 0
    with guard(name):
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:  # a bad record is that record's problem only
                record, _ = record + 1, lines.end_record()
                yield Entry(record, _clean(lines.head), None, f"unreadable CSV record ({e})", empty)
                continue
            record += 1
            length = lines.end_record()
            if length:
                yield _too_long(record, _clean(lines.head), length, lines.limit, empty, "record")
            elif any(f.strip() for f in row):
                yield _csv_entry(record, row, url_index, keep_index)


def _csv_entry(record: int, row: list[str], url_index: int, keep_index: dict[str, int]) -> Entry:
    raw = row[url_index] if url_index < len(row) else ""
    columns = {k: row[i] if i < len(row) else "" for k, i in keep_index.items()}
    if not all(map(_decodable, (raw, *columns.values()))):
        return Entry(record, _clean(raw), None, _UNDECODABLE, {k: _clean(v) for k, v in columns.items()})
    return _make(record, raw, columns)


def _decodable(value: str) -> bool:
    """False if ``value`` holds surrogate escapes: bytes that were not UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --------------------------------------------------------------------------- iterables

def entry_of(item: Any, line: int, key: str = "url", keep: tuple[str, ...] = ()) -> Entry:
    """One URL, a string or a mapping with the URL under ``key``, as the entry at ``line`` (blank: invalid)."""
    if isinstance(item, str):
        return _make(line, item.strip(), dict.fromkeys(keep, ""))
    if isinstance(item, Mapping):
        value = item.get(key)
        return _from_mapping(line, item, key, keep, "" if value is None else str(value))
    raise TypeError(f"a URL must be a str or a Mapping, not {type(item).__name__}")


def iterable_entries(items: Iterable[Any], key: str,
                     keep: tuple[str, ...]) -> Generator[Entry, None, None]:
    """Strings (one URL each; blanks and ``#`` comments skipped) or mappings (URL under ``key``)."""
    for position, item in enumerate(items, 1):
        if not isinstance(item, (str, Mapping)):
            raise TypeError(f"URL list items must be str or Mapping, not {type(item).__name__}")
        if not isinstance(item, str) or item.strip() and not item.strip().startswith("#"):
            yield entry_of(item, position, key, keep)
