"""Byte streams of a URL list: opening a file or stdin, gunzipping, sniffing, numbered lines."""
from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import logging
import sys
import zlib
from collections.abc import Iterator
from typing import IO, Any

from ..errors import InputError

log = logging.getLogger(__name__)

SNIFF_BYTES = 8192  # of a file, read up front to tell gzip, UTF-16 and binary data from text
GZIP_MAGIC = b"\x1f\x8b"  # the first bytes of every gzip member
RAW_PREFIX_CHARS = 200  # of an over-long line, the text kept for the record
SKIP_PIECE = 1 << 16  # the rest of an over-long line is read and counted in pieces this big
MAX_LINE_END = 2  # characters (and bytes) of the longest line ending, CRLF
UTF8_MAX_BYTES = 4  # bytes of the longest UTF-8 character


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
    """Read the first bytes: 8 KiB of a file; whatever is available (enough for the gzip
    magic) of stdin."""
    read = stream.read if eager else getattr(stream, "read1", stream.read)
    wanted = SNIFF_BYTES if eager else len(GZIP_MAGIC)
    data = b""
    while len(data) < wanted:
        chunk = read(SNIFF_BYTES - len(data))
        if not chunk:
            break
        data += chunk
    return data


def open_raw(source: Any, name: str) -> io.BufferedReader:
    """The file opened for reading in binary; one-line InputErrors."""
    try:
        return open(source, "rb")  # noqa: SIM115 - closed by the stream open_stream returns
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a directory, not a file") from None
    except PermissionError:
        raise InputError(f"{name}: permission denied") from None
    except OSError as e:
        raise InputError(f"{name}: cannot open ({e.strerror or e})") from None


def open_stream(source: Any, name: str, is_stdin: bool, fmt: str) -> io.BufferedReader:
    """Open, gunzip if needed (magic bytes) and sniff; raise one-line InputErrors."""
    if is_stdin:  # "-", or a stream the caller gave: the caller's to close
        raw, closes = sys.stdin.buffer if isinstance(source, str) else source, []
    else:
        raw = open_raw(source, name)
        closes = [raw]
    stream = io.BufferedReader(_Chain(b"", raw, closes))
    try:
        with guard(name):
            head = _read_head(stream, not is_stdin)
            gzipped = head.startswith(GZIP_MAGIC)
            stream = io.BufferedReader(_Chain(head, stream, [stream]))
            if gzipped:
                gz = gzip.GzipFile(fileobj=stream, mode="rb")
                head = _read_head(gz, not is_stdin)
                stream = io.BufferedReader(_Chain(head, gz, [gz, stream]))
        _sniff(head, name)
    except BaseException:
        stream.close()
        raise
    log.debug("reading %s as %s%s", name, fmt, " (gzip)" if gzipped else "")
    return stream


def _sniff(head: bytes, name: str) -> None:
    """Refuse text that is not UTF-8 (a UTF-16 BOM) and binary data (NUL bytes)."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputError(f"{name}: not a UTF-8 text file (UTF-16; save it as UTF-8)")
    if b"\0" in head:
        raise InputError(f"{name}: not a text file (binary data)")


@contextlib.contextmanager
def guard(name: str) -> Iterator[None]:
    """Turn read errors (also in the middle of a list) into one-line InputErrors."""
    try:
        yield
    except (EOFError, zlib.error, gzip.BadGzipFile):
        raise InputError(f"{name}: not a valid gzip file") from None
    except csv.Error as e:
        raise InputError(f"{name}: unreadable CSV ({e})") from None
    except OSError as e:
        raise InputError(f"{name}: read error ({e.strerror or e})") from None


def numbered_lines(stream: io.BufferedReader, name: str,
                   limit: int) -> Iterator[tuple[int, bytes, int | None]]:
    """Numbered physical lines (bytes), BOM stripped from the first, never longer than needed:
    ``(number, line, None)``, or ``(number, first bytes, length in characters)`` for a line
    over ``limit`` characters, which is read and counted in pieces but never held whole."""
    cap = UTF8_MAX_BYTES * limit + MAX_LINE_END  # `limit` characters of any UTF-8, then CRLF
    prefix = UTF8_MAX_BYTES * RAW_PREFIX_CHARS
    with guard(name):
        number = 0
        while data := stream.readline(cap):
            number += 1
            if number == 1 and data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8):]
            if len(data) >= cap and not data.endswith(b"\n"):
                yield number, data[:prefix], _rest_length(stream.readline, data)
            elif len(data) > limit and len(_text_of(data)) > limit:
                yield number, data[:prefix], len(_text_of(data))
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
        tail = (tail + piece)[-MAX_LINE_END:]
        if piece.endswith(b"\n"):
            break
        piece = readline(SKIP_PIECE)
    return count + len(decode(b"", True)) - (len(tail) - len(tail.rstrip(b"\r\n")))
