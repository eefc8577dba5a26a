"""One URL -> bytes: a session per thread, timeouts, a per-attempt deadline, a size cap, retries."""
from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from .options import Options

log = logging.getLogger(__name__)
CHUNK = 256 * 1024
CANCELLED_ERROR = "cancelled"
BACKOFF_CAP = 30.0
ACCEPT = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"
_REDIRECTS = (301, 302, 303, 307, 308)


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


class _Failure(Exception):
    """One attempt failed; ``transient`` says whether another attempt may help."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None,
                 retry_after: float | None = None, final_url: str | None = None) -> None:
        super().__init__(message)
        self.transient, self.status, self.retry_after, self.final_url = transient, status, retry_after, final_url


class ProxyConfig:
    """Proxy settings resolved once from --proxy or the environment, then looked up per host."""

    def __init__(self, explicit: str | None) -> None:
        env = urllib.request.getproxies_environment()
        self._no_proxy = env.pop("no", "")
        if explicit:
            self._proxies = {"http": explicit, "https": explicit}
        else:
            self._proxies = {k: v for k, v in env.items() if k in ("http", "https", "all")}
        self.lookup = lru_cache(maxsize=4096)(self._lookup)

    def _lookup(self, scheme: str, host: str) -> dict[str, str] | None:
        if not self._proxies or _bypassed(host, self._no_proxy):
            return None
        proxy = self._proxies.get(scheme) or self._proxies.get("all")
        return {scheme: proxy} if proxy else None


def _bypassed(host: str, no_proxy: str) -> bool:
    host = host.lower().strip("[]")
    for entry in (e.strip().lower().lstrip(".") for e in no_proxy.split(",")):
        entry = entry.split(":")[0] if entry.count(":") == 1 else entry
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return True
    return False


def _ca_verify(opts: Options) -> bool | str:
    if opts.insecure:
        return False
    return opts.ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


class Fetcher:
    """Fetches URLs with one requests.Session per calling thread (never shared across threads or forks)."""

    def __init__(self, opts: Options, stop: StopFlag | None = None) -> None:
        self.opts = opts
        self.stop = stop
        self.proxies = ProxyConfig(opts.proxy)
        self.verify = _ca_verify(opts)
        self._local = threading.local()

    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._new_session()
        return session

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # env proxies are resolved once in ProxyConfig, not per request
        adapter = HTTPAdapter(pool_connections=16, pool_maxsize=2, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update({"User-Agent": self.opts.user_agent, "Accept": ACCEPT})
        session.headers.update(dict(self.opts.headers))
        session.verify = self.verify
        return session

    def fetch(self, url: str) -> Download:
        """Fetch with retries; never raises for a per-URL problem."""
        attempts, final_url, status = 0, url, None
        while True:
            attempts += 1
            try:
                body, status, final_url, ctype = self._attempt(url)
                return Download(body, status, final_url, ctype, None, attempts)
            except _Failure as failure:
                status, final_url = failure.status, failure.final_url or final_url
                if self._stopping():
                    return Download(None, status, final_url, None, CANCELLED_ERROR, attempts)
                if not failure.transient or attempts > self.opts.retries:
                    return Download(None, status, final_url, None, str(failure), attempts)
                delay = self._backoff(attempts, failure.retry_after)
                log.debug("retrying %s in %.2f s: %s", url, delay, failure)
                if self.stop is not None and self.stop.wait(delay):
                    return Download(None, status, final_url, None, CANCELLED_ERROR, attempts)
                if self.stop is None:
                    time.sleep(delay)

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.opts.max_retry_after)
        base = min(BACKOFF_CAP, self.opts.backoff * 2 ** (attempt - 1))
        return base * random.uniform(0.5, 1.5)  # jitter, so retries from many threads do not align

    def _attempt(self, url: str) -> tuple[bytes, int, str, str | None]:
        opts = self.opts
        started = time.monotonic()
        seen = {url}
        current = url
        headers = None
        for _hop in range(opts.max_redirects + 1):
            resp = self._get(current, headers)
            try:
                if resp.status_code not in _REDIRECTS:
                    return self._read(resp, current, started)
                target = self._redirect_target(resp, current, seen)
            finally:
                resp.close()
            if _host(target) != _host(current) and opts.headers:
                # Never leak user-supplied headers (Authorization, cookies) to another host.
                headers = {name: None for name, _ in opts.headers}
            seen.add(target)
            current = target
        raise _Failure(f"too many redirects (more than --max-redirects {opts.max_redirects})",
                       transient=False, final_url=current)

    def _redirect_target(self, resp: requests.Response, current: str, seen: set[str]) -> str:
        location = resp.headers.get("Location")
        if not location:
            raise _Failure(f"HTTP {resp.status_code} redirect without a Location", transient=False,
                           status=resp.status_code, final_url=current)
        target = urljoin(current, location.strip()).split("#", 1)[0]
        scheme = urlsplit(target).scheme.lower()
        if scheme not in ("http", "https"):
            raise _Failure(f"redirect to {scheme or 'an unknown scheme'}: refused (only http and https are followed)",
                           transient=False, status=resp.status_code, final_url=current)
        if target in seen:
            raise _Failure("redirect loop", transient=False, status=resp.status_code, final_url=target)
        return target

    def _get(self, url: str, headers: dict[str, None] | None) -> requests.Response:
        parts = urlsplit(url)
        proxies = self.proxies.lookup(parts.scheme, parts.hostname or "")
        timeout = self.opts.timeout
        try:
            return self.session().get(url, stream=True, allow_redirects=False, timeout=(timeout, timeout),
                                      proxies=proxies, headers=headers)
        except requests.exceptions.RequestException as exc:
            raise _describe_error(exc, timeout, url) from None

    def _read(self, resp: requests.Response, url: str, started: float) -> tuple[bytes, int, str, str | None]:
        opts, status = self.opts, resp.status_code
        if status != 200:
            transient = status in (408, 429) or status >= 500
            retry_after = _retry_after(resp.headers.get("Retry-After")) if status in (429, 503) else None
            raise _Failure(f"HTTP {status} {resp.reason or ''}".strip(), transient=transient, status=status,
                           retry_after=retry_after, final_url=url)
        length = resp.headers.get("Content-Length")
        encoded = resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        if length and length.isdigit() and not encoded and int(length) > opts.max_bytes:
            raise _Failure(f"too large: Content-Length {int(length):,} bytes > --max-bytes {opts.max_bytes:,}",
                           transient=False, status=status, final_url=url)
        body = self._read_body(resp, url, started)
        return body, status, url, resp.headers.get("Content-Type")

    def _read_body(self, resp: requests.Response, url: str, started: float) -> bytes:
        opts, raw = self.opts, resp.raw
        parts: list[bytes] = []
        total = 0
        sock = _socket_of(raw)
        try:
            while True:
                left = opts.deadline - (time.monotonic() - started)
                if left <= 0:
                    raise _Failure(f"timed out: download took longer than --deadline {opts.deadline:g} s",
                                   transient=True, status=200, final_url=url)
                if sock is not None and left < opts.timeout:
                    sock.settimeout(max(left, 0.01))
                if self._stopping():
                    raise _Failure(CANCELLED_ERROR, transient=False, status=200, final_url=url)
                chunk = raw.read1(CHUNK, decode_content=True)
                if not chunk:
                    break
                total += len(chunk)
                if total > opts.max_bytes:
                    raise _Failure(f"too large: body exceeds --max-bytes {opts.max_bytes:,} bytes",
                                   transient=False, status=200, final_url=url)
                parts.append(chunk)
        except _Failure:
            raise
        except Exception as exc:  # urllib3/http.client errors while streaming the body
            if time.monotonic() - started >= opts.deadline:
                raise _Failure(f"timed out: download took longer than --deadline {opts.deadline:g} s",
                               transient=True, status=200, final_url=url) from None
            raise _describe_error(exc, opts.timeout, url, status=200, got=total) from None
        if not total:
            raise _Failure("empty response (HTTP 200 with no body)", transient=False, status=200, final_url=url)
        return parts[0] if len(parts) == 1 else b"".join(parts)


def _socket_of(raw: object):
    conn = getattr(raw, "connection", None)
    return getattr(conn, "sock", None)


def _host(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    return (parts.hostname or "", parts.port)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _describe_error(exc: BaseException, timeout: float, url: str, *, status: int | None = None,
                    got: int = 0) -> _Failure:
    """A requests/urllib3 exception -> a short message a person can read."""
    text = f"{type(exc).__name__}: {exc}"
    low = text.lower()

    def fail(message: str, transient: bool = True) -> _Failure:
        return _Failure(message, transient=transient, status=status, final_url=url)

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return fail(f"timed out connecting (no answer in {timeout:g} s)")
    if "timed out" in low or "timeout" in low:
        return fail(f"timed out: no data for {timeout:g} s")
    if isinstance(exc, requests.exceptions.SSLError) or "certificate" in low:
        return fail("TLS error: " + _tail(exc), transient=False)
    if isinstance(exc, requests.exceptions.ProxyError):
        return fail("proxy error: " + _tail(exc))
    if "name or service not known" in low or "nameresolution" in low or "nodename nor servname" in low:
        return fail("host not found", transient=False)
    if "refused" in low:
        return fail("connection refused")
    if "reset" in low or "broken pipe" in low or "aborted" in low:
        return fail("connection reset by the server" + (f" after {got:,} bytes" if got else ""))
    if "incompleteread" in low or "ended prematurely" in low or "incomplete" in low:
        return fail(f"truncated body: connection closed after {got:,} bytes, before the declared length")
    if isinstance(exc, requests.exceptions.ContentDecodingError) or "decode" in low:
        return fail("bad Content-Encoding: body could not be decoded", transient=False)
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema)):
        return fail("bad URL: " + _tail(exc), transient=False)
    return fail("connection failed: " + _tail(exc))


def _tail(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    text = text.rsplit(": ", 1)[-1].strip("')( ")
    return text[:100]
