"""URL lists in: text, CSV, TSV or JSON Lines (optionally gzipped), stdin or any iterable.

Everything is streamed: files are read in binary, one record at a time, and entries are
produced lazily. Per-URL problems never raise; they become invalid :class:`Entry` records.
Only run-level problems (missing file, binary data, no URL column...) raise :class:`InputError`.
"""
from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import json
import logging
import os
import re
import sys
import zlib
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from .errors import InputError
from .urls import InvalidURL, normalize_url

log = logging.getLogger(__name__)

INPUT_FORMATS = ("txt", "csv", "tsv", "jsonl")
_EXTENSIONS = {".txt": "txt", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_SNIFF = 8192
_UNDECODABLE = "undecodable bytes (not UTF-8)"

# No fetchable URL is longer: servers refuse request lines above 8-64 KiB (nginx and Apache
# 8 KiB by default, IIS 16 KiB, the largest common setting 64 KiB), browsers stop at 2 MiB.
# Long signed URLs (S3 with a session token) stay under 4 KiB.
MAX_URL_CHARS = 65_536
# A CSV or JSON Lines record (URL plus kept columns such as captions) longer than this is
# invalid. It is csv's default field_size_limit(): below it, csv itself never refuses a field.
MAX_RECORD_CHARS = 131_072
RAW_PREFIX_CHARS = 200  # of an over-long line, the text kept for the record
_SKIP_PIECE = 1 << 16  # the rest of an over-long line is read and counted in pieces this big


@dataclass(frozen=True, slots=True)
class Entry:
    """One record of a URL list; ``url`` is None (and ``error`` says why) when invalid."""

    line: int
    raw: str
    url: str | None
    error: str | None
    columns: dict[str, str]


class _Chain(io.RawIOBase):
    """Raw reader yielding ``head`` then the rest of ``rest``; closes ``closes`` on close."""

    def __init__(self, head: bytes, rest: IO[bytes], closes: list[Any]) -> None:
        super().__init__()
        self._head, self._rest, self._closes = memoryview(head), rest, closes
        self._read = getattr(rest, "read1", rest.read)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                for obj in self._closes:
                    obj.close()
            finally:
                super().close()


def _read_head(stream: Any, eager: bool) -> bytes:
    """Read the first bytes: 8 KiB of a file; whatever is available (>= 2 bytes) of stdin."""
    read = stream.read if eager else getattr(stream, "read1", stream.read)
    data = b""
    while len(data) < (_SNIFF if eager else 2):
        chunk = read(_SNIFF - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _open_stream(source: Any, name: str, is_stdin: bool, fmt: str) -> io.BufferedReader:
    """Open, gunzip if needed (magic bytes) and sniff; raise one-line InputErrors."""
    if is_stdin:
        raw, closes = sys.stdin.buffer, []
    else:
        try:
            raw = open(source, "rb")  # noqa: SIM115 - closed by the returned stream
        except FileNotFoundError:
            raise InputError(f"{name}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"{name}: is a directory, not a file") from None
        except PermissionError:
            raise InputError(f"{name}: permission denied") from None
        except OSError as e:
            raise InputError(f"{name}: cannot open ({e.strerror or e})") from None
        closes = [raw]
    stream = io.BufferedReader(_Chain(b"", raw, closes))
    try:
        with _guard(name):
            head = _read_head(stream, not is_stdin)
            gzipped = head[:2] == b"\x1f\x8b"
            stream = io.BufferedReader(_Chain(head, stream, [stream]))
            if gzipped:
                gz = gzip.GzipFile(fileobj=stream, mode="rb")
                head = _read_head(gz, not is_stdin)
                stream = io.BufferedReader(_Chain(head, gz, [gz, stream]))
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise InputError(f"{name}: not a UTF-8 text file (UTF-16; save it as UTF-8)")
        if b"\0" in head:
            raise InputError(f"{name}: not a text file (binary data)")
    except BaseException:
        stream.close()
        raise
    log.debug("reading %s as %s%s", name, fmt, " (gzip)" if gzipped else "")
    return stream


@contextlib.contextmanager
def _guard(name: str) -> Iterator[None]:
    """Turn read errors (also in the middle of a list) into one-line InputErrors."""
    try:
        yield
    except (EOFError, zlib.error, gzip.BadGzipFile):
        raise InputError(f"{name}: not a valid gzip file") from None
    except csv.Error as e:
        raise InputError(f"{name}: unreadable CSV ({e})") from None
    except OSError as e:
        raise InputError(f"{name}: read error ({e.strerror or e})") from None


def _lines(stream: io.BufferedReader, name: str,
           limit: int) -> Iterator[tuple[int, bytes, int | None]]:
    """Numbered physical lines (bytes), BOM stripped from the first, never longer than needed:
    ``(number, line, None)``, or ``(number, first bytes, length in characters)`` for a line
    over ``limit`` characters, which is read and counted in pieces but never held whole."""
    cap = 4 * limit + 2  # bytes: `limit` characters of any UTF-8, then CRLF
    with _guard(name):
        number = 0
        while data := stream.readline(cap):
            number += 1
            if number == 1 and data.startswith(codecs.BOM_UTF8):
                data = data[3:]
            if len(data) >= cap and not data.endswith(b"\n"):
                yield number, data[:4 * RAW_PREFIX_CHARS], _rest_length(stream.readline, data)
            elif len(data) > limit and len(_text_of(data)) > limit:
                yield number, data[:4 * RAW_PREFIX_CHARS], len(_text_of(data))
            else:
                yield number, data, None


def _text_of(line: bytes) -> str:
    return line.decode("utf-8", "replace").rstrip("\r\n")


def _rest_length(readline: Any, head: bytes) -> int:
    """Characters in a line whose start is ``head``: read (and dropped) up to its end."""
    decode = codecs.getincrementaldecoder("utf-8")("replace").decode
    count, tail, piece = 0, b"", head
    while piece:
        count += len(decode(piece))
        tail = (tail + piece)[-2:]
        if piece.endswith(b"\n"):
            break
        piece = readline(_SKIP_PIECE)
    return count + len(decode(b"", True)) - (len(tail) - len(tail.rstrip(b"\r\n")))


def _too_long(line: int, head: str, length: int, limit: int, columns: dict[str, str]) -> Entry:
    return Entry(line, head[:RAW_PREFIX_CHARS], None,
                 f"line too long: {length:,} characters (limit {limit:,})", columns)


def _make(line: int, raw: str, columns: dict[str, str], error: str | None = None) -> Entry:
    if error is None and len(raw) > MAX_URL_CHARS:
        return Entry(line, raw[:RAW_PREFIX_CHARS], None,
                     f"URL too long: {len(raw):,} characters (limit {MAX_URL_CHARS:,})", columns)
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


def _txt_entries(stream: io.BufferedReader, name: str) -> Generator[Entry, None, None]:
    for number, data, length in _lines(stream, name, MAX_URL_CHARS):
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


def _jsonl_entries(stream: io.BufferedReader, name: str, key: str,
                   keep: tuple[str, ...]) -> Generator[Entry, None, None]:
    for number, data, length in _lines(stream, name, MAX_RECORD_CHARS):
        data = data.strip()
        empty = dict.fromkeys(keep, "")
        if length is not None:
            yield _too_long(number, data.decode("utf-8", "replace"), length, MAX_RECORD_CHARS, empty)
            continue
        if not data:
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            yield Entry(number, data.decode("utf-8", "replace"), None, _UNDECODABLE, empty)
            continue
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            yield Entry(number, text, None, "not valid JSON", empty)
            continue
        if not isinstance(obj, dict):
            yield Entry(number, text, None, "not a JSON object", empty)
        else:
            yield _from_mapping(number, obj, key, keep, text)


def _find_column(names: list[str], wanted: str, name: str) -> int:
    if wanted in names:
        return names.index(wanted)
    folded = [i for i, n in enumerate(names) if n.casefold() == wanted.casefold()]
    if len(folded) == 1:
        return folded[0]
    shown = ", ".join(names[:30]) + (", ..." if len(names) > 30 else "")
    raise InputError(f"{name}: no column '{wanted}' in the header (columns: {shown})")


class _CsvLines:
    """The physical lines of a CSV or TSV file for csv.reader, no record over ``limit`` characters.

    csv.reader gets a record's lines while the record stays under the limit. A record that
    grows past it is read on to its end here, in bounded pieces, following its quotes as csv
    would; csv.reader then gets an empty line, or a closing quote if it was inside a quoted
    field, and records() finds the record's length in end_record().
    """

    def __init__(self, text: io.TextIOWrapper, delimiter: str, limit: int) -> None:
        self._readline, self._limit = text.readline, limit
        d = re.escape(delimiter)
        self._unquoted = re.compile(f"[^{d}\r\n]*")  # the rest of an unquoted field
        self._quoted = re.compile('[^"]*(?:""[^"]*)*')  # the rest of a quoted one, doubled quotes too
        self._delimiter = delimiter
        self.head, self._length, self._ending = "", 0, 0

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        line = self._readline(self._limit + 2)
        if not line:
            raise StopIteration
        continuing = self._length > 0  # csv asks for more of a record only inside a quoted field
        if not continuing:
            self.head = line[:RAW_PREFIX_CHARS]
        self._length += len(line)
        self._ending = len(line) - len(line.rstrip("\r\n"))
        if self._length - self._ending <= self._limit:
            return line
        self._skip_record(line, quoted=continuing)
        return '"\n' if continuing else "\n"

    def end_record(self) -> int | None:
        """The length of the record csv.reader just returned if it was too long; then reset."""
        length, self._length = self._length - self._ending, 0
        return length if length > self._limit else None

    def _skip_record(self, piece: str, quoted: bool) -> None:
        """Read up to the end of the record ``piece`` belongs to, counting its characters."""
        state = "quoted" if quoted else "start"
        while True:
            body = piece.rstrip("\r\n")
            state = self._follow(body, state)
            if len(body) < len(piece) and state != "quoted":
                break  # a line end outside quotes ends the record
            piece = self._readline(_SKIP_PIECE)
            if not piece:
                break
            self._length += len(piece)
        self._ending = len(piece) - len(piece.rstrip("\r\n"))

    def _follow(self, text: str, state: str) -> str:
        """csv's field states (default dialect) from ``state`` through ``text``, by jumps."""
        i, end, delimiter = 0, len(text), self._delimiter
        while i < end:
            if state == "quoted":
                i = self._quoted.match(text, i).end()
                if i == end:
                    return "quoted"
                state, i = "after quote", i + 1
            elif state == "after quote" and text[i] == '"':
                state, i = "quoted", i + 1  # a doubled quote inside quotes
            elif state == "start" and text[i] == '"':
                state, i = "quoted", i + 1
            elif text[i] == delimiter:
                state, i = "start", i + 1
            else:  # unquoted text, or text after a closing quote: up to the next delimiter
                state, i = "unquoted", self._unquoted.match(text, i).end()
        return state


def _csv_entries(stream: io.BufferedReader, name: str, delimiter: str, url_column: str,
                 keep: tuple[str, ...]) -> Generator[Entry, None, None]:
    """Read the header now (eagerly) and return a generator over the data records."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    limit = min(MAX_RECORD_CHARS, csv.field_size_limit())
    lines = _CsvLines(text, delimiter, limit)
    reader = csv.reader(lines, delimiter=delimiter)
    with _guard(name):
        for header in reader:
            length = lines.end_record()
            if length:
                raise InputError(f"{name}: header row too long ({length:,} characters, limit {limit:,})")
            if any(f.strip() for f in header):
                break
        else:
            raise InputError(f"{name}: empty file (no header row)")
    names = [_clean(h).strip() for h in header]
    url_index = _find_column(names, url_column, name)
    keep_index = {k: _find_column(names, k, name) for k in keep}
    empty = dict.fromkeys(keep, "")

    def records() -> Generator[Entry, None, None]:
        record = 0
        with _guard(name):
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
                    yield Entry(record, _clean(lines.head), None,
                                f"record too long: {length:,} characters (limit {limit:,})", empty)
                    continue
                if not any(f.strip() for f in row):
                    continue
                raw = row[url_index] if url_index < len(row) else ""
                columns = {k: row[i] if i < len(row) else "" for k, i in keep_index.items()}
                try:
                    for value in (raw, *columns.values()):
                        value.encode("utf-8")  # surrogate escapes = undecodable bytes
                except UnicodeEncodeError:
                    yield Entry(record, _clean(raw), None, _UNDECODABLE,
                                {k: _clean(v) for k, v in columns.items()})
                    continue
                yield _make(record, raw, columns)

    return records()


def _iterable_entries(items: Iterable[Any], key: str,
                      keep: tuple[str, ...]) -> Generator[Entry, None, None]:
    for position, item in enumerate(items, 1):
        if isinstance(item, str):
            text = item.strip()
            if text and not text.startswith("#"):
                yield _make(position, text, dict.fromkeys(keep, ""))
        elif isinstance(item, Mapping):
            value = item.get(key)
            yield _from_mapping(position, item, key, keep, "" if value is None else str(value))
        else:
            raise TypeError(f"URL list items must be str or Mapping, not {type(item).__name__}")


class _Entries(Iterator[Entry]):
    """The lazy entry iterator returned by :func:`open_entries`; closable, a context manager."""

    def __init__(self, entries: Generator[Entry, None, None],
                 stream: io.BufferedReader | None) -> None:
        self._entries, self._stream = entries, stream

    def __next__(self) -> Entry:
        return next(self._entries)

    def close(self) -> None:
        """Stop reading and close the file (never closes standard input itself)."""
        try:
            self._entries.close()
        finally:
            if self._stream is not None:
                self._stream.close()

    def __enter__(self) -> _Entries:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_entries(source: Any, *, input_format: str | None = None, url_column: str = "url",
                 url_key: str = "url", keep_columns: tuple[str, ...] = ()) -> _Entries:
    """Open and check the list now (raising InputError / ValueError); return a lazy iterator.

    ``source``: a path, ``"-"`` for standard input, or an iterable of str or of mappings.
    """
    keep = tuple(keep_columns)
    fmt = input_format.lower() if isinstance(input_format, str) else input_format
    if fmt is not None and fmt not in INPUT_FORMATS:
        raise ValueError("--input-format must be one of " + ", ".join(INPUT_FORMATS))
    if isinstance(source, (str, bytes, os.PathLike)):
        is_stdin = isinstance(source, str) and source == "-"
        name = "<stdin>" if is_stdin else os.fsdecode(source)
        if fmt is None:
            base = name.lower()[:-3] if name.lower().endswith(".gz") else name.lower()
            fmt = "txt" if is_stdin else _EXTENSIONS.get(os.path.splitext(base)[1], "txt")
        if fmt == "txt" and keep:
            raise ValueError("--keep-columns needs a CSV, TSV or JSON Lines list")
        stream = _open_stream(source, name, is_stdin, fmt)
        try:
            if fmt in ("csv", "tsv"):
                delimiter = "," if fmt == "csv" else "\t"
                entries = _csv_entries(stream, name, delimiter, url_column, keep)
            elif fmt == "jsonl":
                entries = _jsonl_entries(stream, name, url_key, keep)
            else:
                entries = _txt_entries(stream, name)
        except BaseException:
            stream.close()
            raise
        return _Entries(entries, stream)
    if isinstance(source, Iterable):
        return _Entries(_iterable_entries(source, url_key, keep), None)
    raise TypeError(f"cannot read URLs from {type(source).__name__}")


def iter_entries(source: Any, *, input_format: str | None = None, url_column: str = "url",
                 url_key: str = "url", keep_columns: tuple[str, ...] = ()) -> Iterator[Entry]:
    """Like :func:`open_entries`, but nothing is opened until iteration starts."""
    with open_entries(source, input_format=input_format, url_column=url_column,
                      url_key=url_key, keep_columns=keep_columns) as entries:
        yield from entries
