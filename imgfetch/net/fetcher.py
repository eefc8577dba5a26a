"""One URL -> bytes: timeouts, a per-URL time budget (--max-time), a size cap, retries, redirects."""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import SplitResult, urljoin, urlsplit

import requests
from requests.structures import CaseInsensitiveDict

from ..options import Options
from ..records import ErrorKind, transient_status
from ..urls import mask_url
from .adapter import WatchedAdapter
from .auth import hop_authorization
from .budget import Budget, parse_retry_after, retry_wait
from .failures import Failure, describe
from .limits import idle_budget
from .optout import refuse_opted_out
from .session import ProxyConfig, ca_verify, drops_user_headers, prepared_get, request_headers
from .watchdog import Armed, Watchdog

__all__ = ["CANCELLED_ERROR", "Download", "Fetcher", "ProxyConfig", "StopFlag"]

log = logging.getLogger(__name__)
CHUNK = 256 * 1024    # bytes read from the socket at a time
CANCELLED_ERROR = "cancelled"
MIN_POOL_SIZE = 2     # idle connections kept per host, even with one thread
DRAIN_BYTES = 64 * 1024  # a redirect's or an error's body up to this size is read, so its connection is reused
DRAIN_WAIT_S = 0.05   # ... if it arrives within this time; else the connection is closed
MIN_WAIT_S = 0.01     # shortest socket timeout, when the attempt's time is all but gone
HTTP_OK = 200         # the only status whose body is taken as the image
_REDIRECTS = (301, 302, 303, 307, 308)
_RETRY_AFTER = (429, 503)  # statuses whose Retry-After header is honoured


class StopFlag(Protocol):
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = ...) -> bool: ...


@dataclass
class Download:
    """The outcome of fetching one URL (after retries)."""

    body: bytes | None
    http_status: int | None
    final_url: str | None
    content_type: str | None
    error: str | None
    attempts: int
    error_kind: str | None = None


class Fetcher:
    """Fetches URLs through one requests adapter per process (``net.adapter``), shared by the download threads.

    A prepared request goes straight to the adapter, so cookies, environment settings and redirect
    resolution are not redone on every call: redirects are followed by hand, proxies resolved once
    per host, credentials added per hop by ``auth``.
    """

    def __init__(self, opts: Options, stop: StopFlag | None = None) -> None:
        self.opts = opts
        self.stop = stop
        self.proxies = ProxyConfig(opts.proxy)
        self.verify = ca_verify(opts)
        self.adapter = WatchedAdapter(idle_budget(opts.threads), max(MIN_POOL_SIZE, opts.threads))
        # _bare_headers: for hops that must not see the user's headers
        self._headers, self._bare_headers = request_headers(opts)
        self._user_auth = "authorization" in CaseInsensitiveDict(dict(opts.headers))

    def fetch(self, url: str) -> Download:
        """Fetch with retries inside the --max-time budget; never raises for a per-URL problem."""
        budget = Budget(self.opts)
        dog = Watchdog.get()
        attempts, final_url = 0, url
        try:
            while True:
                attempts += 1
                budget.start_attempt()  # first: the watchdog must never see the previous attempt's deadline
                armed = dog.arm(budget.attempt_end, self.stop)
                try:
                    body, status, final_url, ctype = self._attempt(url, budget, armed)
                    return Download(body, status, final_url, ctype, None, attempts)
                except Failure as exc:
                    failure = exc
                finally:
                    dog.disarm()
                final_url = failure.final_url or final_url
                delay, error, kind = self._after_failure(failure, attempts, budget)
                if delay is not None:
                    log.debug("retrying %s in %.2f s: %s", mask_url(url), delay, error)
                    if not self._sleep(delay):
                        continue
                    error, kind = CANCELLED_ERROR, None
                return Download(None, failure.status, final_url, None, error, attempts, kind)
        finally:
            dog.disarm()

    def _after_failure(self, failure: Failure, attempts: int, budget: Budget) -> tuple[float | None, str, str | None]:
        """(seconds before the next attempt, or None to give up; the error so far; its kind)."""
        error = str(failure)
        if self._stopping():
            return None, CANCELLED_ERROR, None
        if not failure.transient or attempts > self.opts.retries or budget.left() <= 0:
            return None, error, failure.kind
        delay, refusal = retry_wait(self.opts, attempts, failure.retry_after, budget.left())
        if refusal:
            return None, f"{error}; {refusal}", failure.kind
        return delay, error, failure.kind

    def _sleep(self, delay: float) -> bool:
        """Wait between attempts; True when the run is stopping."""
        if self.stop is not None:
            return self.stop.wait(delay)
        time.sleep(delay)
        return False

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _attempt(self, url: str, budget: Budget, armed: Armed) -> tuple[bytes, int, str, str | None]:
        opts = self.opts
        seen = {url}
        current, headers = url, self._headers
        origin = previous = urlsplit(url)
        auth: str | None = None  # the Authorization value derived for the previous hop
        for _hop in range(opts.max_redirects + 1):
            parts = urlsplit(current)
            if auth is not None and drops_user_headers(previous, parts):
                auth = None  # as requests' rebuild_auth: credentials never follow to another host or to plain http
            # A user's own Authorization --header stands where it is sent; netrc fills in elsewhere.
            auth = hop_authorization(parts, auth, netrc=not (self._user_auth and headers is self._headers))
            resp = self._get(current, parts, headers, auth, budget, armed)
            try:
                if resp.status_code not in _REDIRECTS:
                    return self._read(resp, current, budget, armed)
                target = self._redirect_target(resp, current, seen)
            finally:
                _release(resp)
            if opts.headers and headers is self._headers and drops_user_headers(origin, urlsplit(target)):
                headers = self._bare_headers  # never leak Authorization or cookies to another host or to plain http
            seen.add(target)
            current, previous = target, parts
        raise Failure(f"too many redirects (more than --max-redirects {opts.max_redirects})", "redirect",
                      transient=False, final_url=current)

    def _redirect_target(self, resp: requests.Response, current: str, seen: set[str]) -> str:
        location = resp.headers.get("Location")
        if not location:
            raise Failure(f"HTTP {resp.status_code} redirect without a Location", ErrorKind.PROTOCOL, transient=False,
                           status=resp.status_code, final_url=current)
        target = urljoin(current, location.strip()).split("#", 1)[0]
        scheme = urlsplit(target).scheme.lower()
        if scheme not in ("http", "https"):
            raise Failure(f"redirect to {scheme or 'an unknown scheme'}: refused (only http and https are followed)",
                          ErrorKind.REDIRECT, transient=False, status=resp.status_code, final_url=current)
        if target in seen:
            raise Failure("redirect loop", ErrorKind.REDIRECT, transient=False, status=resp.status_code, final_url=target)
        return target

    def _get(self, url: str, parts: SplitResult, headers: CaseInsensitiveDict, auth: str | None, budget: Budget,
             armed: Armed) -> requests.Response:
        request = prepared_get(url, headers, auth)
        proxies = self.proxies.lookup(parts.scheme, parts.netloc.rpartition("@")[2])
        wait = max(MIN_WAIT_S, min(self.opts.timeout, budget.attempt_end - time.monotonic()))
        try:
            return self.adapter.send(request, stream=True, timeout=(wait, wait), verify=self.verify,
                                     proxies=proxies or {})
        except requests.exceptions.RequestException as exc:
            raise self._failure(exc, budget, armed, url) from None

    def _failure(self, exc: BaseException, budget: Budget, armed: Armed, url: str, *, status: int | None = None,
                 got: int = 0) -> Failure:
        if self._stopping():
            return Failure(CANCELLED_ERROR, "cancelled", transient=False, status=status, final_url=url)
        failure = describe(exc, self.opts.timeout, url, status=status, got=got)
        if failure.kind != ErrorKind.DNS and (armed.fired or time.monotonic() >= budget.attempt_end):
            return budget.overrun(url, status)  # a DNS lookup that ran out of time says so itself
        return failure

    def _read(self, resp: requests.Response, url: str, budget: Budget,
              armed: Armed) -> tuple[bytes, int, str, str | None]:
        opts, status = self.opts, resp.status_code
        if status != HTTP_OK:
            transient = transient_status(status)
            retry_after = parse_retry_after(resp.headers.get("Retry-After")) if status in _RETRY_AFTER else None
            raise Failure(f"HTTP {status} {resp.reason or ''}".strip(), ErrorKind.HTTP, transient=transient, status=status,
                           retry_after=retry_after, final_url=url)
        refuse_opted_out(resp.raw.headers, opts, status, url)  # net/optout.py: X-Robots-Tag, before the body
        length = resp.headers.get("Content-Length")
        encoded = resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        if length and length.isdigit() and not encoded and int(length) > opts.max_bytes:
            raise Failure(f"too large: Content-Length {int(length):,} bytes > --max-bytes {opts.max_bytes:,}",
                          ErrorKind.TOO_LARGE, transient=False, status=status, final_url=url)
        body = self._read_body(resp, url, budget, armed)
        return body, status, url, resp.headers.get("Content-Type")

    def _read_body(self, resp: requests.Response, url: str, budget: Budget, armed: Armed) -> bytes:
        opts, raw = self.opts, resp.raw
        parts: list[bytes] = []
        total = 0
        try:
            while True:
                if time.monotonic() >= budget.attempt_end:
                    raise budget.overrun(url, HTTP_OK)
                if self._stopping():
                    raise Failure(CANCELLED_ERROR, "cancelled", transient=False, status=HTTP_OK, final_url=url)
                chunk = raw.read1(CHUNK, decode_content=True)
                if not chunk:
                    if armed.fired:  # the watchdog shut the socket: a body without a length just ends there
                        raise self._failure(TimeoutError("cut"), budget, armed, url, status=HTTP_OK, got=total)
                    break
                total += len(chunk)
                if total > opts.max_bytes:
                    raise Failure(f"too large: body exceeds --max-bytes {opts.max_bytes:,} bytes",
                                  ErrorKind.TOO_LARGE, transient=False, status=HTTP_OK, final_url=url)
                parts.append(chunk)
        except Failure:
            raise
        except Exception as exc:  # urllib3/http.client errors while streaming the body
            raise self._failure(exc, budget, armed, url, status=HTTP_OK, got=total) from None
        if not total:
            raise Failure("empty response (HTTP 200 with no body)", ErrorKind.EMPTY, transient=False, status=HTTP_OK,
                          final_url=url)
        return parts[0] if len(parts) == 1 else b"".join(parts)


def _release(resp: requests.Response) -> None:
    """Close an answer whose body is not wanted (a redirect, an error), first reading a small body that
    arrives at once, so that its connection goes back to the pool instead of being closed."""
    raw, length = resp.raw, resp.headers.get("Content-Length", "")
    sock = getattr(raw.connection, "sock", None)
    if sock is not None and length.isdigit() and int(length) <= DRAIN_BYTES:
        with contextlib.suppress(Exception):  # whatever goes wrong, close() below closes the connection
            sock.settimeout(DRAIN_WAIT_S)  # the next request on this connection sets its own timeout
            raw.drain_conn()  # returns the connection to the pool once the body is read whole
    resp.close()
