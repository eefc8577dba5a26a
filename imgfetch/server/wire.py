"""The HTTP/1.1 wire format: parse a request head, build and write response heads and bodies."""
from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
from http import HTTPStatus
from typing import Any, NamedTuple, Optional
from urllib.parse import parse_qsl, urlsplit

MAX_STREAM_S = 60.0  # longest any streamed or trickled answer may take
SNIPPET = 100        # characters of a bad request line or header quoted in a log message
_REASONS = {s.value: s.phrase for s in HTTPStatus}
_VERSIONS = ("HTTP/1.1", "HTTP/1.0")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
CTL = re.compile(r"[\x00-\x1f\x7f]")  # control characters: never allowed in a target or header
_NO_BODY = (204, 304)
TEXT = "text/plain; charset=utf-8"

Headers = list[tuple[str, str]]


class BadRequest(Exception):
    """A request head that cannot be parsed (answered with 400)."""


class Request(NamedTuple):
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    keep_alive: bool


class Response(NamedTuple):
    status: int
    headers: Headers
    body: bytes


Answer = Optional[Response]  # None: the route ended the connection itself


def resp(status: int, body: bytes = b"", ctype: str = TEXT, *extra: tuple[str, str]) -> Response:
    """A response with Content-Type ``ctype`` and the ``extra`` headers."""
    return Response(status, [("Content-Type", ctype), *extra], body)


def text(status: int, *extra: tuple[str, str]) -> Response:
    """A plain-text response whose body is the status line, e.g. ``404 Not Found``."""
    body = f"{status} {_REASONS.get(status, 'Unknown')}\n".encode()
    return resp(status, body, TEXT, *extra)


def ctype_len(ctype: str, length: int) -> Headers:
    """Content-Type and Content-Length headers for a streamed body."""
    return [("Content-Type", ctype), ("Content-Length", str(length))]


def _target(target: str) -> tuple[str, str]:
    """Path and query string of an origin-form or absolute-form request target."""
    if target.startswith("/"):
        path, _, qs = target.partition("?")
        return path, qs
    if target.startswith(("http://", "https://")):
        split = urlsplit(target)
        return split.path or "/", split.query
    raise BadRequest(f"bad target {target[:SNIPPET]!r}")


def parse_request(head: bytes) -> Request:
    """Parse request line and headers (``head`` ends with CRLFCRLF)."""
    lines = head.decode("latin-1").lstrip("\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or parts[2] not in _VERSIONS:
        raise BadRequest(lines[0][:SNIPPET])
    method, target, version = parts
    if CTL.search(target):
        raise BadRequest("control character in target")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name):
            raise BadRequest(f"bad header line {line[:SNIPPET]!r}")
        headers[name.lower()] = value.strip()
    path, qs = _target(target)
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    keep = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
    query = dict(parse_qsl(qs, keep_blank_values=True))
    return Request(method, path.partition("#")[0], query, headers, keep)


def head_bytes(status: int, headers: Headers, keep: bool) -> bytes:
    """The status line and headers of a response, ending with CRLFCRLF."""
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}", "Server: imgfetch-test"]
    lines += [f"{k}: {CTL.sub('', v)}" for k, v in headers]
    lines.append("Connection: keep-alive" if keep else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "replace")


async def write(writer: asyncio.StreamWriter, method: str, response: Response, keep: bool) -> None:
    """Send a whole response (only its head for HEAD)."""
    headers, body = list(response.headers), response.body
    if response.status in _NO_BODY:
        body = b""
    else:
        headers.append(("Content-Length", str(len(body))))
    head = head_bytes(response.status, headers, keep)
    writer.write(head if method == "HEAD" or not body else head + body)
    await writer.drain()


async def start_stream(writer: asyncio.StreamWriter, req: Request, status: int, headers: Headers) -> bool:
    """Send only a head for a streamed answer; True if a body should follow."""
    writer.write(head_bytes(status, headers, False))
    await writer.drain()
    return req.method != "HEAD"


async def bounded(coro: Any) -> None:
    """Run a streaming coroutine for at most MAX_STREAM_S."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(coro, MAX_STREAM_S)


def rst(writer: asyncio.StreamWriter) -> None:
    """Close the connection abruptly with a TCP RST."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # linger on with a zero timeout: close() then sends RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def query_num(query: dict[str, str], key: str, default: float, lo: float, hi: float) -> float:
    """``query[key]`` as a float clamped to ``lo..hi``; ``default`` if absent or not a number."""
    try:
        return min(max(float(query[key]), lo), hi) if key in query else default
    except ValueError:
        return default
