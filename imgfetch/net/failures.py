"""Why a URL failed, decided from exception types (never from message text, which holds the URL).

Every failed record carries an ``error_kind`` (an ErrorKind, declared in records.py with what
each means and whether a re-run retries it) and a short ``error`` a person can read.
"""
from __future__ import annotations

import http.client
import socket
import ssl
from typing import Callable, Iterator

import requests
import urllib3.exceptions as u3

from ..records import ErrorKind
from .resolve import DNSTimeout

SHORT_CHARS = 100  # longest part of an exception's text quoted in an error message

class Failure(Exception):
    """One attempt failed: ``kind`` an ErrorKind (or the fetcher's own "cancelled"); ``transient``: a retry may help."""

    def __init__(self, message: str, kind: str, *, transient: bool, status: int | None = None,
                 retry_after: float | None = None, final_url: str | None = None) -> None:
        super().__init__(message)
        self.kind, self.transient, self.status = kind, transient, status
        self.retry_after, self.final_url = retry_after, final_url


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (urllib3's ``reason``, ``__cause__``, ``__context__``)."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        reason = getattr(item, "reason", None)
        stack.extend(a for a in (*getattr(item, "args", ()), reason, item.__context__, item.__cause__)
                     if isinstance(a, BaseException))


Verdict = tuple[str, ErrorKind, bool]  # (message, kind, transient)
Finder = Callable[..., BaseException | None]  # the first exception in the chain of any of these types


def describe(exc: BaseException, timeout: float, url: str, *, status: int | None = None, got: int = 0) -> Failure:
    """A requests/urllib3/socket exception -> a typed Failure with a short message."""
    chain = list(causes(exc))

    def has(*types: type) -> BaseException | None:
        return next((c for c in chain if isinstance(c, types)), None)

    message, kind, transient = _reaching_the_server(has, timeout, got) or _the_answer(has, exc, got)
    return Failure(message, kind, transient=transient, status=status, final_url=url)


def _reaching_the_server(has: Finder, timeout: float, got: int) -> Verdict | None:
    """Failures to connect or to hear back: refused, reset, DNS, timeouts, TLS."""
    if has(ConnectionRefusedError):
        return "connection refused", ErrorKind.CONNECTION, True
    if has(ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
        return "connection reset by the server" + (f" after {got:,} bytes" if got else ""), ErrorKind.CONNECTION, True
    late = has(DNSTimeout)
    if late is not None:
        return str(late), ErrorKind.DNS, True  # "DNS lookup of HOST timed out after 2.0 s"
    lookup = has(socket.gaierror)
    if lookup is not None and getattr(lookup, "errno", None) == socket.EAI_AGAIN:  # the resolver failed, not the name
        return "DNS lookup failed: temporary failure in name resolution", ErrorKind.DNS, True
    if lookup is not None or has(u3.NameResolutionError):
        return "host not found", ErrorKind.DNS, False
    connect = has(requests.exceptions.ConnectTimeout, u3.ConnectTimeoutError)
    if connect is not None and not isinstance(connect, u3.NewConnectionError):  # a subclass, for history's sake
        return f"timed out connecting (no answer in {timeout:g} s)", ErrorKind.TIMEOUT, True
    if has(requests.exceptions.ReadTimeout, u3.ReadTimeoutError, socket.timeout, TimeoutError):
        return f"timed out: no data for {timeout:g} s", ErrorKind.TIMEOUT, True
    tls = has(ssl.SSLError)
    if tls is not None or has(requests.exceptions.SSLError, u3.SSLError):
        return f"TLS error: {_tls_reason(tls)}", ErrorKind.TLS, False
    return None


def _the_answer(has: Finder, exc: BaseException, got: int) -> Verdict:
    """Failures of the proxy, of the server's answer or of the URL; else a plain connection failure."""
    if has(requests.exceptions.ProxyError, u3.ProxyError):
        return "proxy error: " + _short(has(OSError) or exc), ErrorKind.PROXY, True
    if has(u3.InvalidChunkLength, u3.InvalidHeader, u3.HeaderParsingError, http.client.BadStatusLine,
           http.client.LineTooLong, requests.exceptions.InvalidHeader):
        detail = _short(has(u3.InvalidChunkLength, u3.InvalidHeader, http.client.HTTPException) or exc)
        return f"malformed HTTP answer: {detail}", ErrorKind.PROTOCOL, False
    if has(requests.exceptions.ContentDecodingError, u3.DecodeError):
        return "bad Content-Encoding: body could not be decoded", ErrorKind.PROTOCOL, False
    if has(http.client.IncompleteRead, u3.IncompleteRead):
        return f"truncated body: connection closed after {got:,} bytes, before the declared length", ErrorKind.CONNECTION, True
    if has(http.client.RemoteDisconnected):
        return "connection closed by the server before it answered", ErrorKind.CONNECTION, True
    if has(requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema, u3.LocationParseError):
        return "bad URL: " + _short(exc), ErrorKind.INVALID, False
    return "connection failed: " + _short(has(OSError) or exc), ErrorKind.CONNECTION, True


def _tls_reason(error: BaseException | None) -> str:
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"certificate verify failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return (error.reason or "handshake failed").replace("_", " ").lower()
    return "handshake failed"


def _short(exc: BaseException, limit: int = SHORT_CHARS) -> str:
    """The innermost readable part of an exception, cut at a word, never inside brackets."""
    text = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).strip()
    text = text.rsplit(": ", 1)[-1] if len(text) > limit else text
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " ..."
    for opening, closing in ("()", "[]", "{}"):
        text += closing * max(0, text.count(opening) - text.count(closing))
    return text
