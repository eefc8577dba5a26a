"""One URL -> bytes: timeouts, a per-URL time budget (--max-time), a size cap, retries, redirects."""
from __future__ import annotations

import email.utils
import logging
import os
import random
import time
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol
from urllib.parse import SplitResult, urljoin, urlsplit

import requests
from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict
from requests.utils import should_bypass_proxies

from .failures import Failure, describe
from .limits import idle_pools
from ..options import Options
from ..urls import mask_url
from .watchdog import Armed, WatchedAdapter, Watchdog

log = logging.getLogger(__name__)
CHUNK = 256 * 1024
CANCELLED_ERROR = "cancelled"
BACKOFF_CAP = 30.0
MIN_ATTEMPT_S = 1.0   # a retry is started only if at least min(--timeout, this) of --max-time is left
IDLE_POOLS = 64       # hosts whose idle keep-alive connections a process keeps
ACCEPT = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"
ACCEPT_ENCODING = "gzip, deflate"
_REDIRECTS = (301, 302, 303, 307, 308)
_NO_HOOKS: dict[str, list] = {"response": []}


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

    def _lookup(self, scheme: str, netloc: str) -> dict[str, str] | None:
        if not self._proxies:
            return None
        # requests' own NO_PROXY rules (suffixes, host:port, CIDR blocks for IP addresses).
        if self._no_proxy and should_bypass_proxies(f"{scheme}://{netloc}/", self._no_proxy):
            return None
        proxy = self._proxies.get(scheme) or self._proxies.get("all")
        return {scheme: proxy} if proxy else None


def _ca_verify(opts: Options) -> bool | str:
    if opts.insecure:
        return False
    return opts.ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


class _Budget:
    """The time one URL may take (--max-time), and the time the current attempt may take (--deadline)."""

    __slots__ = ("end", "attempt_end")

    def __init__(self, opts: Options) -> None:
        self.end = time.monotonic() + opts.max_time
        self.attempt_end = self.end

    def start_attempt(self, deadline: float | None) -> float:
        now = time.monotonic()
        self.attempt_end = min(self.end, now + deadline) if deadline else self.end
        return self.attempt_end - now

    def left(self) -> float:
        return self.end - time.monotonic()


class Fetcher:
    """Fetches URLs through one requests adapter per process, shared by the download threads.

    requests is used leanly: a prepared request goes straight to the adapter, so cookies,
    environment settings and redirect resolution are not redone on every call (redirects are
    followed by hand, proxies resolved once per host). The adapter keeps at most
    ``opts.threads`` idle connections per host and IDLE_POOLS hosts, so a list spread over
    thousands of hosts does not run out of file descriptors (fewer hosts where the limit is low).
    """

    def __init__(self, opts: Options, stop: StopFlag | None = None) -> None:
        self.opts = opts
        self.stop = stop
        self.proxies = ProxyConfig(opts.proxy)
        self.verify = _ca_verify(opts)
        self.adapter = WatchedAdapter(pool_connections=idle_pools(opts.threads, IDLE_POOLS),
                                      pool_maxsize=max(2, opts.threads), max_retries=0)
        base = {"User-Agent": opts.user_agent, "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING,
                "Connection": "keep-alive"}
        self._headers = CaseInsensitiveDict(base)
        self._headers.update(dict(opts.headers))
        self._bare_headers = CaseInsensitiveDict(base)  # for hops that must not see user headers

    def fetch(self, url: str) -> Download:
        """Fetch with retries inside the --max-time budget; never raises for a per-URL problem."""
        budget = _Budget(self.opts)
        dog = Watchdog.get()
        attempts, final_url, status = 0, url, None
        try:
            while True:
                attempts += 1
                armed = dog.arm(budget.attempt_end)
                try:
                    body, status, final_url, ctype = self._attempt(url, budget, armed)
                    return Download(body, status, final_url, ctype, None, attempts)
                except Failure as exc:
                    failure = exc
                    status, final_url = failure.status, failure.final_url or final_url
                    error = str(failure)
                finally:
                    dog.disarm()
                if self._stopping():
                    return Download(None, status, final_url, None, CANCELLED_ERROR, attempts)
                if not failure.transient or attempts > self.opts.retries or budget.left() <= 0:
                    return Download(None, status, final_url, None, error, attempts, failure.kind)
                delay, refusal = self._next_wait(attempts, failure.retry_after, budget)
                if refusal:
                    return Download(None, status, final_url, None, f"{error}; {refusal}", attempts, failure.kind)
                log.debug("retrying %s in %.2f s: %s", mask_url(url), delay, error)
                if self._sleep(delay):
                    return Download(None, status, final_url, None, CANCELLED_ERROR, attempts)
        finally:
            dog.disarm()

    def _next_wait(self, attempts: int, retry_after: float | None, budget: _Budget) -> tuple[float, str | None]:
        """(seconds to wait before the next attempt, or a reason not to make one)."""
        opts, left = self.opts, budget.left()
        if retry_after is not None:
            if retry_after > opts.max_retry_after:
                return 0.0, f"Retry-After {retry_after:g} s is longer than --max-retry-after {opts.max_retry_after:g} s"
            if retry_after > left:
                return 0.0, f"Retry-After {retry_after:g} s is longer than the {max(left, 0):.1f} s left of --max-time {opts.max_time:g} s"
            delay = retry_after
        else:
            delay = min(BACKOFF_CAP, opts.backoff * 2 ** (attempts - 1)) * random.uniform(0.5, 1.5)  # jitter
        if left - delay < min(opts.timeout, MIN_ATTEMPT_S):
            return 0.0, f"gave up after {attempts} attempt{'s' if attempts > 1 else ''}: no time left in --max-time {opts.max_time:g} s"
        return delay, None

    def _sleep(self, delay: float) -> bool:
        """Wait between attempts; True when the run is stopping."""
        if self.stop is not None:
            return self.stop.wait(delay)
        time.sleep(delay)
        return False

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _attempt(self, url: str, budget: _Budget, armed: Armed) -> tuple[bytes, int, str, str | None]:
        opts = self.opts
        allowed = budget.start_attempt(opts.deadline)
        armed.deadline = budget.attempt_end
        seen = {url}
        current, headers = url, self._headers
        origin = urlsplit(url)
        for _hop in range(opts.max_redirects + 1):
            resp = self._get(current, headers, budget, armed, allowed)
            try:
                if resp.status_code not in _REDIRECTS:
                    return self._read(resp, current, budget, armed)
                target = self._redirect_target(resp, current, seen)
            finally:
                resp.close()
            if opts.headers and headers is self._headers and _drops_user_headers(origin, urlsplit(target)):
                headers = self._bare_headers  # never leak Authorization or cookies to another host or to plain http
            seen.add(target)
            current = target
        raise Failure(f"too many redirects (more than --max-redirects {opts.max_redirects})", "redirect",
                      transient=False, final_url=current)

    def _redirect_target(self, resp: requests.Response, current: str, seen: set[str]) -> str:
        location = resp.headers.get("Location")
        if not location:
            raise Failure(f"HTTP {resp.status_code} redirect without a Location", "protocol", transient=False,
                           status=resp.status_code, final_url=current)
        target = urljoin(current, location.strip()).split("#", 1)[0]
        scheme = urlsplit(target).scheme.lower()
        if scheme not in ("http", "https"):
            raise Failure(f"redirect to {scheme or 'an unknown scheme'}: refused (only http and https are followed)",
                          "redirect", transient=False, status=resp.status_code, final_url=current)
        if target in seen:
            raise Failure("redirect loop", "redirect", transient=False, status=resp.status_code, final_url=target)
        return target

    def _get(self, url: str, headers: CaseInsensitiveDict, budget: _Budget, armed: Armed,
             allowed: float) -> requests.Response:
        opts = self.opts
        request = PreparedRequest()
        request.method, request.body, request.hooks, request._cookies = "GET", None, _NO_HOOKS, None
        if url.isascii() and " " not in url:
            request.url = url  # already normalised by sources.normalize_url (or a Location we joined)
        else:
            request.prepare_url(url, None)
        request.headers = headers.copy()
        parts = urlsplit(url)
        proxies = self.proxies.lookup(parts.scheme, parts.netloc.rpartition("@")[2])
        wait = max(0.01, min(opts.timeout, budget.attempt_end - time.monotonic()))
        try:
            return self.adapter.send(request, stream=True, timeout=(wait, wait), verify=self.verify,
                                     proxies=proxies or {})
        except requests.exceptions.RequestException as exc:
            raise self._failure(exc, budget, armed, url) from None

    def _failure(self, exc: BaseException, budget: _Budget, armed: Armed, url: str, *, status: int | None = None,
                 got: int = 0) -> Failure:
        if self._stopping():
            return Failure(CANCELLED_ERROR, "cancelled", transient=False, status=status, final_url=url)
        if armed.fired or time.monotonic() >= budget.attempt_end:
            return self._over_time(url, status, budget)
        return describe(exc, self.opts.timeout, url, status=status, got=got)

    def _over_time(self, url: str, status: int | None, budget: _Budget) -> Failure:
        opts = self.opts
        if budget.attempt_end < budget.end:
            return Failure(f"timed out: download took longer than --deadline {opts.deadline:g} s", "timeout", transient=True,
                            status=status, final_url=url)
        return Failure(f"timed out: download took longer than --max-time {opts.max_time:g} s", "timeout", transient=True,
                        status=status, final_url=url)

    def _read(self, resp: requests.Response, url: str, budget: _Budget,
              armed: Armed) -> tuple[bytes, int, str, str | None]:
        opts, status = self.opts, resp.status_code
        if status != 200:
            transient = status in (408, 429) or status >= 500
            retry_after = _retry_after(resp.headers.get("Retry-After")) if status in (429, 503) else None
            raise Failure(f"HTTP {status} {resp.reason or ''}".strip(), "http", transient=transient, status=status,
                           retry_after=retry_after, final_url=url)
        length = resp.headers.get("Content-Length")
        encoded = resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        if length and length.isdigit() and not encoded and int(length) > opts.max_bytes:
            raise Failure(f"too large: Content-Length {int(length):,} bytes > --max-bytes {opts.max_bytes:,}",
                          "too_large", transient=False, status=status, final_url=url)
        body = self._read_body(resp, url, budget, armed)
        return body, status, url, resp.headers.get("Content-Type")

    def _read_body(self, resp: requests.Response, url: str, budget: _Budget, armed: Armed) -> bytes:
        opts, raw = self.opts, resp.raw
        parts: list[bytes] = []
        total = 0
        try:
            while True:
                if time.monotonic() >= budget.attempt_end:
                    raise self._over_time(url, 200, budget)
                if self._stopping():
                    raise Failure(CANCELLED_ERROR, "cancelled", transient=False, status=200, final_url=url)
                chunk = raw.read1(CHUNK, decode_content=True)
                if not chunk:
                    break
                total += len(chunk)
                if total > opts.max_bytes:
                    raise Failure(f"too large: body exceeds --max-bytes {opts.max_bytes:,} bytes",
                                  "too_large", transient=False, status=200, final_url=url)
                parts.append(chunk)
        except Failure:
            raise
        except Exception as exc:  # urllib3/http.client errors while streaming the body
            raise self._failure(exc, budget, armed, url, status=200, got=total) from None
        if not total:
            raise Failure("empty response (HTTP 200 with no body)", "empty", transient=False, status=200, final_url=url)
        return parts[0] if len(parts) == 1 else b"".join(parts)


def _drops_user_headers(origin: SplitResult, target: SplitResult) -> bool:
    """As requests' should_strip_auth: another host or port, or https downgraded to http."""
    if (origin.hostname or "").lower() != (target.hostname or "").lower():
        return True
    if (origin.scheme, target.scheme) == ("http", "https") and origin.port in (None, 80) and target.port in (None, 443):
        return False  # the usual upgrade of the same site
    return origin.scheme != target.scheme or origin.port != target.port


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
