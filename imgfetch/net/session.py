"""How a request is made, decided once per process: proxies per host, TLS verification, headers,
and which redirect hops must not see the user's headers."""
from __future__ import annotations

import os
import urllib.request
from functools import lru_cache
from urllib.parse import SplitResult

from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict
from requests.utils import should_bypass_proxies

from ..options import Options
from ..urls import DEFAULT_PORTS
from .optout import user_agent

ACCEPT = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"
ACCEPT_ENCODING = "gzip, deflate"
PROXY_CACHE_HOSTS = 4096   # (scheme, host) pairs whose proxy choice is remembered


class ProxyConfig:
    """Proxy settings resolved once from --proxy or the environment, then looked up per host."""

    def __init__(self, explicit: str | None) -> None:
        env = urllib.request.getproxies_environment()
        self._no_proxy = env.pop("no", "")
        if explicit:
            self._proxies = {"http": explicit, "https": explicit}
        else:
            self._proxies = {k: v for k, v in env.items() if k in ("http", "https", "all")}
        self.lookup = lru_cache(maxsize=PROXY_CACHE_HOSTS)(self._lookup)

    def _lookup(self, scheme: str, netloc: str) -> dict[str, str] | None:
        if not self._proxies:
            return None
        # requests' own NO_PROXY rules (suffixes, host:port, CIDR blocks for IP addresses).
        if self._no_proxy and should_bypass_proxies(f"{scheme}://{netloc}/", self._no_proxy):
            return None
        proxy = self._proxies.get(scheme) or self._proxies.get("all")
        return {scheme: proxy} if proxy else None


def ca_verify(opts: Options) -> bool | str:
    """requests' ``verify``: False with --insecure, else a CA bundle (--ca-bundle or the environment's) or True."""
    if opts.insecure:
        return False
    return opts.ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


def request_headers(opts: Options) -> tuple[CaseInsensitiveDict, CaseInsensitiveDict]:
    """(headers with the user's --header values, headers without them for hops that must not see them)."""
    base = {"User-Agent": user_agent(opts), "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING,
            "Connection": "keep-alive"}
    headers = CaseInsensitiveDict(base)
    headers.update(dict(opts.headers))
    return headers, CaseInsensitiveDict(base)


def prepared_get(url: str, headers: CaseInsensitiveDict, authorization: str | None = None) -> PreparedRequest:
    """A GET ready for the adapter, without a Session's cookie, environment and hook handling;
    ``authorization`` (from net.auth) replaces any Authorization header."""
    request = PreparedRequest()
    request.method = "GET"
    if url.isascii() and " " not in url:
        request.url = url  # already normalised by urls.normalize_url (or a Location we joined)
    else:
        request.prepare_url(url, None)
    request.headers = headers.copy()
    if authorization is not None:
        request.headers["Authorization"] = authorization
    return request


def drops_user_headers(origin: SplitResult, target: SplitResult) -> bool:
    """As requests' should_strip_auth: another host or port, or https downgraded to http."""
    if (origin.hostname or "").lower() != (target.hostname or "").lower():
        return True
    if ((origin.scheme, target.scheme) == ("http", "https") and origin.port in (None, DEFAULT_PORTS["http"])
            and target.port in (None, DEFAULT_PORTS["https"])):
        return False  # the usual upgrade of the same site
    return origin.scheme != target.scheme or origin.port != target.port
