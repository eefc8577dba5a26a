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
import hashlib
import io
import ipaddress
import json
import logging
import os
import re
import sys
import zlib
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import IO, Any
from urllib.parse import unquote

from imgfetch.errors import InputError

log = logging.getLogger(__name__)

INPUT_FORMATS = ("txt", "csv", "tsv", "jsonl")
_EXTENSIONS = {".txt": "txt", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_SNIFF = 8192
_UNDECODABLE = "undecodable bytes (not UTF-8)"


@dataclass(frozen=True, slots=True)
class Entry:
    """One record of a URL list; ``url`` is None (and ``error`` says why) when invalid."""

    line: int
    raw: str
    url: str | None
    error: str | None
    columns: dict[str, str]


class InvalidURL(ValueError):
    """A URL that cannot be downloaded; the message is the human-readable reason."""


_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_STRIP = "".join(map(chr, range(33)))  # C0 controls and space, like browsers
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_USER_SAFE = _UNRESERVED | frozenset(b"!$&'()*+,;=:")
_PATH_SAFE = _USER_SAFE | frozenset(b"@/")
_QUERY_SAFE = _PATH_SAFE | frozenset(b"?")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_LABEL_RE = re.compile(r"[a-z0-9_-]{1,63}\Z")
_DOTS_RE = re.compile("[.\u3002\uff0e\uff61]")
_DOT, _DOTDOT = {".", "%2E"}, {"..", ".%2E", "%2E.", "%2E%2E"}


def _quote(text: str, safe: frozenset[int]) -> str:
    """Percent-encode ``text`` (UTF-8), keeping ``safe`` bytes and valid ``%XX`` escapes."""
    data, out, i = text.encode("utf-8"), [], 0
    while i < len(data):
        b = data[i]
        if b == 0x25 and i + 2 < len(data) and data[i + 1] in _HEX and data[i + 2] in _HEX:
            out.append("%" + data[i + 1:i + 3].decode("ascii").upper())
            i += 3
            continue
        out.append(chr(b) if b in safe else f"%{b:02X}")
        i += 1
    return "".join(out)


def _remove_dots(path: str) -> str:
    """Resolve ``.`` and ``..`` segments of an absolute, already-quoted path."""
    segments, out = path.split("/")[1:], []
    for i, seg in enumerate(segments):
        upper = seg.upper()
        if upper in _DOT or upper in _DOTDOT:
            if upper in _DOTDOT and out:
                out.pop()
            if i == len(segments) - 1:
                out.append("")  # "/a/.." -> "/", "/a/." -> "/a/"
        else:
            out.append(seg)
    return "/" + "/".join(out)


@lru_cache(maxsize=8192)  # a list has few hosts and many URLs: validate each host once
def _host(text: str) -> str:
    """Lower-case and IDNA-encode a host name (or check a dotted IPv4 address)."""
    def bad(reason: str) -> InvalidURL:
        return InvalidURL(f"bad host name {text!r} ({reason})")

    host = unquote(text, errors="strict") if "%" in text else text
    labels = _DOTS_RE.split(host)
    trailing_dot = len(labels) > 1 and labels[-1] == ""
    if trailing_dot:
        labels.pop()
    out = []
    for label in labels:
        if not label:
            raise bad("empty label")
        try:
            ascii_label = label.lower() if label.isascii() else label.encode("idna").decode("ascii")
        except UnicodeError:
            raise bad("not a valid international name") from None
        if not _LABEL_RE.match(ascii_label):
            raise bad("label too long" if len(ascii_label) > 63 else "invalid characters")
        out.append(ascii_label)
    result = ".".join(out)
    if out[-1].isdigit():
        try:
            result = str(ipaddress.IPv4Address(result))
        except ValueError:
            raise bad("not a valid IPv4 address") from None
    if len(result) > 253:
        raise bad("too long")
    return result + ("." if trailing_dot else "")


def normalize_url(raw: str) -> str:
    """Normalise a URL like a browser would; raise :class:`InvalidURL` with a reason."""
    s = raw.strip().strip(_STRIP)
    if not s:
        raise InvalidURL("empty URL")
    m = _SCHEME_RE.match(s)
    if not m:
        raise InvalidURL("not a URL")
    scheme, rest = m.group(1).lower(), s[m.end():]
    if scheme not in _DEFAULT_PORTS:
        if len(scheme) == 1 or "." in scheme or rest[:1].isdigit():  # C:\..., host:port
            raise InvalidURL("not a URL")
        raise InvalidURL(f"unsupported scheme '{scheme}' (only http and https)")
    rest = rest.lstrip("/\\")
    end = next((i for i, c in enumerate(rest) if c in "/\\?#"), len(rest))
    authority, tail = rest[:end], rest[end:].partition("#")[0]
    path, has_query, query = tail.partition("?")
    userinfo, at, hostport = authority.rpartition("@")
    if hostport.startswith("["):
        close = hostport.find("]")
        literal, after = hostport[1:close], hostport[close + 1:]
        if close < 0 or "%" in literal or (after and not after.startswith(":")):
            raise InvalidURL(f"bad host name {hostport!r} (bad IPv6 address)")
        try:
            host = f"[{ipaddress.IPv6Address(literal).compressed}]"
        except ValueError:
            raise InvalidURL(f"bad host name {hostport!r} (bad IPv6 address)") from None
        port = after[1:]
    else:
        host_text, _, port = hostport.partition(":") if ":" in hostport else (hostport, "", "")
        if not host_text:
            raise InvalidURL("no host in URL")
        try:
            host = _host(host_text)
        except UnicodeError:
            raise InvalidURL(f"bad host name {host_text!r} (undecodable)") from None
    digits = port.lstrip("0")[:6] if port.isascii() and port.isdigit() else "x"
    if port and not (digits.isdigit() and 1 <= int(digits) <= 65535):
        raise InvalidURL(f"bad port {port!r} (must be a number from 1 to 65535)")
    port = digits if port else ""
    try:
        user = _quote(userinfo, _USER_SAFE) + "@" if userinfo else ""
        path = _quote(path, _PATH_SAFE)
        path = _remove_dots(path if path.startswith("/") else "/" + path)
        query = "?" + _quote(query, _QUERY_SAFE) if has_query else ""
    except UnicodeEncodeError:
        raise InvalidURL("undecodable characters in URL") from None
    port_part = f":{port}" if port and port != _DEFAULT_PORTS[scheme] else ""
    return f"{scheme}://{user}{host}{port_part}{path}{query}"


def url_key(url: str) -> str:
    """32 hex chars: the first 128 bits of the SHA-256 of the normalised URL."""
    return normalized_key(normalize_url(url))


def normalized_key(url: str) -> str:
    """url_key() of a URL that normalize_url() already returned (no second normalisation),
    or the key of any other string taken exactly as it is (an invalid line's raw text)."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def mask_url(url: str) -> str:
    """Replace the password of ``user:password@host`` with ``***`` (for logs and reports)."""
    m = re.match(r"[A-Za-z][A-Za-z0-9+.\-]*://([^/?#\\]*)", url)
    if not m:
        return url
    userinfo, at, hostport = m.group(1).rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not at or not colon or not password:
        return url
    return f"{url[:m.start(1)]}{user}:***@{hostport}{url[m.end(1):]}"


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


def _lines(stream: io.BufferedReader, name: str) -> Iterator[tuple[int, bytes]]:
    """Numbered physical lines (bytes), BOM stripped from the first."""
    with _guard(name):
        for number, data in enumerate(stream, 1):
            yield number, (data[3:] if number == 1 and data.startswith(codecs.BOM_UTF8) else data)


def _make(line: int, raw: str, columns: dict[str, str], error: str | None = None) -> Entry:
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
    for number, data in _lines(stream, name):
        try:
            text, error = data.decode("utf-8").strip(), None
        except UnicodeDecodeError:
            text, error = data.decode("utf-8", "replace").strip(), _UNDECODABLE
        if text and not text.startswith("#"):
            yield _make(number, text, {}, error)


def _jsonl_entries(stream: io.BufferedReader, name: str, key: str,
                   keep: tuple[str, ...]) -> Generator[Entry, None, None]:
    for number, data in _lines(stream, name):
        data = data.strip()
        if not data:
            continue
        empty = dict.fromkeys(keep, "")
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


def _csv_entries(stream: io.BufferedReader, name: str, delimiter: str, url_column: str,
                 keep: tuple[str, ...]) -> Generator[Entry, None, None]:
    """Read the header now (eagerly) and return a generator over the data records."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text, delimiter=delimiter)
    with _guard(name):
        header = next((row for row in reader if any(f.strip() for f in row)), None)
    if header is None:
        raise InputError(f"{name}: empty file (no header row)")
    names = [_clean(h).strip() for h in header]
    url_index = _find_column(names, url_column, name)
    keep_index = {k: _find_column(names, k, name) for k in keep}

    def records() -> Generator[Entry, None, None]:
        with _guard(name):
            for record, row in enumerate(reader, 1):
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
