"""The credentials one request hop carries, as requests' Session sends them: Basic auth from the
URL's ``user:password@``, else the host's entry in ``~/.netrc`` (or ``$NETRC``).

The fetcher sends prepared requests straight to the adapter, so Session.prepare_request (which
does this in requests) never runs; this module does it per hop instead. One difference: when a
URL carries credentials they win over netrc (requests lets netrc win), as curl and browsers do.
"""
from __future__ import annotations

import base64
import os
from functools import lru_cache
from urllib.parse import SplitResult, unquote_to_bytes

from requests.utils import get_netrc_auth

NETRC_CACHE_HOSTS = 4096  # hosts whose netrc answer a process remembers


def basic_value(user: bytes, password: bytes) -> str:
    """An Authorization header value for Basic auth (RFC 7617), the bytes sent as given."""
    return "Basic " + base64.b64encode(user + b":" + password).decode("ascii")


def userinfo_auth(parts: SplitResult) -> str | None:
    """Basic auth from ``user:password@`` in the URL, percent-decoded (``u%40x`` is ``u@x``).

    As in requests, a user without a ``:password`` part carries no credentials. The decoded
    bytes are sent as they are, which is UTF-8 for a URL normalize_url() encoded (requests
    would send Latin-1, and fail on other characters).
    """
    userinfo, at, _host = parts.netloc.rpartition("@")
    if not at:
        return None
    user, colon, password = userinfo.partition(":")
    return basic_value(unquote_to_bytes(user), unquote_to_bytes(password)) if colon else None


@lru_cache(maxsize=NETRC_CACHE_HOSTS)  # reading and parsing the file per URL would cost more than the URL
def _netrc_for_netloc(netrc_env: str | None, netloc: str) -> str | None:
    """Basic auth from the netrc file for this host (its port does not matter), or None. ``netrc_env`` is only
    part of the cache's key: a process whose $NETRC changes looks again."""
    found = get_netrc_auth(f"http://{netloc}/")  # requests' lookup: $NETRC, else ~/.netrc, ~/_netrc
    return basic_value(found[0].encode("utf-8"), found[1].encode("utf-8")) if found else None


def hop_authorization(parts: SplitResult, carried: str | None, netrc: bool) -> str | None:
    """The Authorization value for one hop: the URL's own credentials, else ``carried`` (what the
    previous hop sent, when it may go on to this one), else the host's netrc entry if ``netrc``."""
    own = userinfo_auth(parts)
    if own is not None:
        return own
    if carried is not None:
        return carried
    return _netrc_for_netloc(os.environ.get("NETRC"), parts.netloc) if netrc else None
