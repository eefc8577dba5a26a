"""Why a URL failed, decided from exception types (never from message text, which holds the URL).

Every failed record carries an ``error_kind`` from ERROR_KINDS and a short ``error`` a person
can read.
"""
from __future__ import annotations

import http.client
import socket
import ssl
from typing import Iterator

import requests
import urllib3.exceptions as u3

ERROR_KINDS = {
    "http": "the server answered with an HTTP error status (404, 500, ...)",
    "timeout": "no answer in --timeout, or the URL took longer than --max-time / --deadline",
    "connection": "refused, reset or closed before the whole body arrived",
    "dns": "the host name does not resolve",
    "tls": "the TLS handshake or certificate check failed",
    "proxy": "the proxy refused or failed",
    "protocol": "a malformed HTTP answer (bad headers, conflicting lengths, bad encoding)",
    "redirect": "a redirect loop, too many hops, or a hop to a refused scheme",
    "too_large": "over --max-bytes or --max-pixels",
    "empty": "HTTP 200 with no body",
    "not_image": "the body is not an image",
    "corrupt": "an image that cannot be decoded",
    "format": "an image in a format not in --formats",
    "disk": "the image could not be saved",
    "disk_full": "the image could not be saved: no space left (the run stops; re-run it after freeing space)",
    "crashed": "the worker process died twice while fetching this URL",
    "invalid": "not a usable http(s) URL",
    "internal": "a bug in imgfetch (please report it)",
}


class Failure(Exception):
    """One attempt failed: ``kind`` from ERROR_KINDS; ``transient`` says whether a retry may help."""

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


def describe(exc: BaseException, timeout: float, url: str, *, status: int | None = None, got: int = 0) -> Failure:
    """A requests/urllib3/socket exception -> a typed Failure with a short message."""
    chain = list(causes(exc))

    def has(*types: type) -> BaseException | None:
        return next((c for c in chain if isinstance(c, types)), None)

    def fail(message: str, kind: str, transient: bool = True) -> Failure:
        return Failure(message, kind, transient=transient, status=status, final_url=url)

    if has(ConnectionRefusedError):
        return fail("connection refused", "connection")
    if has(ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
        return fail("connection reset by the server" + (f" after {got:,} bytes" if got else ""), "connection")
    if has(u3.NameResolutionError, socket.gaierror):
        return fail("host not found", "dns", transient=False)
    connect = has(requests.exceptions.ConnectTimeout, u3.ConnectTimeoutError)
    if connect is not None and not isinstance(connect, u3.NewConnectionError):  # a subclass, for history's sake
        return fail(f"timed out connecting (no answer in {timeout:g} s)", "timeout")
    if has(requests.exceptions.ReadTimeout, u3.ReadTimeoutError, socket.timeout, TimeoutError):
        return fail(f"timed out: no data for {timeout:g} s", "timeout")
    tls = has(ssl.SSLError)
    if tls is not None or has(requests.exceptions.SSLError, u3.SSLError):
        return fail(f"TLS error: {_tls_reason(tls)}", "tls", transient=False)
    if has(requests.exceptions.ProxyError, u3.ProxyError):
        return fail("proxy error: " + _short(has(OSError) or exc), "proxy")
    if has(u3.InvalidChunkLength, u3.InvalidHeader, u3.HeaderParsingError, http.client.BadStatusLine,
           http.client.LineTooLong, requests.exceptions.InvalidHeader):
        return fail(f"malformed HTTP answer: {_short(has(u3.InvalidChunkLength, u3.InvalidHeader, http.client.HTTPException) or exc)}",
                    "protocol", transient=False)
    if has(requests.exceptions.ContentDecodingError, u3.DecodeError):
        return fail("bad Content-Encoding: body could not be decoded", "protocol", transient=False)
    if has(http.client.IncompleteRead, u3.IncompleteRead):
        return fail(f"truncated body: connection closed after {got:,} bytes, before the declared length",
                    "connection")
    if has(http.client.RemoteDisconnected):
        return fail("connection closed by the server before it answered", "connection")
    if has(requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema, u3.LocationParseError):
        return fail("bad URL: " + _short(exc), "invalid", transient=False)
    return fail("connection failed: " + _short(has(OSError) or exc), "connection")


def _tls_reason(error: BaseException | None) -> str:
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"certificate verify failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return (error.reason or "handshake failed").replace("_", " ").lower()
    return "handshake failed"


def _short(exc: BaseException, limit: int = 100) -> str:
    """The innermost readable part of an exception, cut at a word, never inside brackets."""
    text = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).strip()
    text = text.rsplit(": ", 1)[-1] if len(text) > limit else text
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " ..."
    for opening, closing in ("()", "[]", "{}"):
        text += closing * max(0, text.count(opening) - text.count(closing))
    return text
