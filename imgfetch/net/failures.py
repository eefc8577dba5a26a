"""Why a URL failed, decided from exception types (never from message text, which holds the URL).

Every failed record carries an ``error_kind`` from ERROR_KINDS and a short ``error`` a person
can read.
"""
from __future__ import annotations

import http.client
import socket
import ssl
from typing import Callable, Iterator

import requests
import urllib3.exceptions as u3

from .resolve import DNSTimeout

SHORT_CHARS = 100  # longest part of an exception's text quoted in an error message

ERROR_KINDS = {
    "http": "the server answered with an HTTP error status (404, 500, ...)",
    "timeout": "no answer in --timeout, or the URL took longer than --max-time / --deadline",
    "connection": "refused, reset or closed before the whole body arrived",
    "dns": "the host name does not resolve, or the resolver did not answer in time",
    "tls": "the TLS handshake or certificate check failed",
    "proxy": "the proxy refused or failed",
    "protocol": "a malformed HTTP answer (bad headers, conflicting lengths, bad encoding)",
    "redirect": "a redirect loop, too many hops, or a hop to a refused scheme",
    "too_large": "over --max-bytes or --max-pixels",
    "empty": "HTTP 200 with no body",
    "not_image": "the body is not an image",
    "corrupt": "an image that cannot be decoded",
    "format": "an image in a format not in --formats",
    "filtered": "an image refused by --min-image-size or --max-aspect-ratio",
    "disallowed": "an X-Robots-Tag header opts the image out (--disallowed-header-directives)",
    "disk": "the image could not be saved",
    "disk_full": "the image could not be saved: no space left (the run stops; re-run it after freeing space)",
    "crashed": "the worker process died twice while fetching this URL",
    "invalid": "not a usable http(s) URL",
    "internal": "a bug in imgfetch (please report it)",
}


# What a re-run does not retry by default (--retry-failed transient): what the URL's answer was, which asking
# again later does not change. Every other kind can change (the network, the server, the disk, imgfetch).
PERMANENT_KINDS = frozenset({"redirect", "too_large", "not_image", "corrupt", "format", "invalid", "filtered",
                             "disallowed"})
RETRYABLE_STATUSES = (408, 429)  # request timeout, too many requests; and every 5xx
SERVER_ERRORS = 500  # statuses from here on may succeed on a retry


def transient_status(status: int) -> bool:
    """Whether an HTTP error status may go away on a retry: 408, 429 and 5xx."""
    return status in RETRYABLE_STATUSES or status >= SERVER_ERRORS


def permanent_failure(error_kind: str | None, http_status: int | None) -> bool:
    """Whether a failed record's cause stays the same when asked again: an HTTP error but 408, 429 and 5xx
    (404, 410, 403, ...), or an answer that is no usable image. Unknown kinds count as transient."""
    if error_kind == "http":
        return http_status is not None and not transient_status(http_status)
    return error_kind in PERMANENT_KINDS


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


Verdict = tuple[str, str, bool]  # (message, kind, transient)
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
        return "connection refused", "connection", True
    if has(ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
        return "connection reset by the server" + (f" after {got:,} bytes" if got else ""), "connection", True
    late = has(DNSTimeout)
    if late is not None:
        return str(late), "dns", True  # "DNS lookup of HOST timed out after 2.0 s"
    lookup = has(socket.gaierror)
    if lookup is not None and getattr(lookup, "errno", None) == socket.EAI_AGAIN:  # the resolver failed, not the name
        return "DNS lookup failed: temporary failure in name resolution", "dns", True
    if lookup is not None or has(u3.NameResolutionError):
        return "host not found", "dns", False
    connect = has(requests.exceptions.ConnectTimeout, u3.ConnectTimeoutError)
    if connect is not None and not isinstance(connect, u3.NewConnectionError):  # a subclass, for history's sake
        return f"timed out connecting (no answer in {timeout:g} s)", "timeout", True
    if has(requests.exceptions.ReadTimeout, u3.ReadTimeoutError, socket.timeout, TimeoutError):
        return f"timed out: no data for {timeout:g} s", "timeout", True
    tls = has(ssl.SSLError)
    if tls is not None or has(requests.exceptions.SSLError, u3.SSLError):
        return f"TLS error: {_tls_reason(tls)}", "tls", False
    return None


def _the_answer(has: Finder, exc: BaseException, got: int) -> Verdict:
    """Failures of the proxy, of the server's answer or of the URL; else a plain connection failure."""
    if has(requests.exceptions.ProxyError, u3.ProxyError):
        return "proxy error: " + _short(has(OSError) or exc), "proxy", True
    if has(u3.InvalidChunkLength, u3.InvalidHeader, u3.HeaderParsingError, http.client.BadStatusLine,
           http.client.LineTooLong, requests.exceptions.InvalidHeader):
        detail = _short(has(u3.InvalidChunkLength, u3.InvalidHeader, http.client.HTTPException) or exc)
        return f"malformed HTTP answer: {detail}", "protocol", False
    if has(requests.exceptions.ContentDecodingError, u3.DecodeError):
        return "bad Content-Encoding: body could not be decoded", "protocol", False
    if has(http.client.IncompleteRead, u3.IncompleteRead):
        return f"truncated body: connection closed after {got:,} bytes, before the declared length", "connection", True
    if has(http.client.RemoteDisconnected):
        return "connection closed by the server before it answered", "connection", True
    if has(requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema, u3.LocationParseError):
        return "bad URL: " + _short(exc), "invalid", False
    return "connection failed: " + _short(has(OSError) or exc), "connection", True


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
