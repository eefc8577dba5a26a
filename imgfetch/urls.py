"""One URL: normalising it to the form that is fetched and keyed, and masking its secrets for logs."""
from __future__ import annotations

import hashlib
import ipaddress
import re
from functools import lru_cache
from urllib.parse import unquote, urlsplit

import idna

from .errors import InvalidURL

# Query (and fragment) parameters whose values mask_url() hides, compared case-insensitively.
SECRET_PARAMS = ("X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "X-Goog-Signature",
                 "X-Goog-Credential", "Signature", "sig", "token", "access_token", "api_key", "apikey",
                 "key", "password", "passwd", "secret", "auth", "session", "sessionid")
_SECRET_NAMES = frozenset(name.lower() for name in SECRET_PARAMS)
_PARAM_RE = re.compile(r"([?&;#])([^=&;#]*)=([^&;#]*)")


def looks_like_url(text: str) -> bool:
    """Whether text starts like an absolute URL (``scheme://``): what a list file's name never does."""
    return _SCHEME_SLASHES_RE.match(text) is not None


_SCHEME_SLASHES_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_AUTHORITY_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://([^/?#\\]*)")  # what mask_url() looks in
_STRIP = "".join(map(chr, range(ord(" ") + 1)))  # C0 controls and space, like browsers
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_USER_SAFE = _UNRESERVED | frozenset(b"!$&'()*+,;=:")
_PATH_SAFE = _USER_SAFE | frozenset(b"@/")
_QUERY_SAFE = _PATH_SAFE | frozenset(b"?")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_PERCENT = ord("%")
_ESCAPE_LEN = len("%XX")
DEFAULT_PORTS = {"http": 80, "https": 443}
Host = tuple[str, int]  # (hostname, port)
_MAX_PORT = 65535
_PORT_DIGITS = len(str(_MAX_PORT)) + 1  # of a port's digits (zeros dropped), enough to be too big
_MAX_LABEL = 63  # characters of one DNS label (RFC 1035)
_MAX_NAME = 253  # characters of a whole DNS name, without its trailing dot
_LABEL_RE = re.compile(rf"[a-z0-9_-]{{1,{_MAX_LABEL}}}\Z")
_DOTS_RE = re.compile("[.\u3002\uff0e\uff61]")
_DOT, _DOTDOT = {".", "%2E"}, {"..", ".%2E", "%2E.", "%2E%2E"}
_MAX_HOST_TEXT = _MAX_NAME * len("%E4%B8%AD")  # the longest name, each character percent-encoded UTF-8
_HOST_CACHE_SIZE = 8192  # hosts whose checks are remembered: a list has few hosts and many URLs
_SHOWN_HOST_CHARS = 100  # of a bad host name, quoted in its error
KEY_HEX_CHARS = 32  # of a key: the first 128 bits of a SHA-256, in hex


def _quote(text: str, safe: frozenset[int]) -> str:
    """Percent-encode ``text`` (UTF-8), keeping ``safe`` bytes and valid ``%XX`` escapes."""
    data, out, i = text.encode("utf-8"), [], 0
    while i < len(data):
        b = data[i]
        if b == _PERCENT and i + _ESCAPE_LEN <= len(data) and data[i + 1] in _HEX and data[i + 2] in _HEX:
            out.append("%" + data[i + 1:i + _ESCAPE_LEN].decode("ascii").upper())
            i += _ESCAPE_LEN
            continue
        out.append(chr(b) if b in safe else f"%{b:02X}")
        i += 1
    return "".join(out)


def _remove_dots(path: str) -> str:
    """Resolve ``.`` and ``..`` segments of an absolute, already-quoted path."""
    segments = path.split("/")[1:]
    out: list[str] = []
    for i, seg in enumerate(segments):
        upper = seg.upper()
        if upper in _DOT or upper in _DOTDOT:
            if upper in _DOTDOT and out:
                out.pop()
            if i == len(segments) - 1:
                out.append("")  # "/a/.." -> "/", "/a/." -> "/a/"
        else:
            out.append(seg)
    return "/" + "/".join(out)


@lru_cache(maxsize=_HOST_CACHE_SIZE)  # validate each host once
def _host(text: str) -> str:
    """Lower-case and IDNA-encode a host name (or check a dotted IPv4 address)."""
    if len(text) > _MAX_HOST_TEXT:  # before IDNA, whose cost grows with its input
        raise _bad_host(text, "too long")
    host = unquote(text, errors="strict") if "%" in text else text
    labels = _DOTS_RE.split(host)
    trailing_dot = len(labels) > 1 and labels[-1] == ""
    if trailing_dot:
        labels.pop()
    out = [_ascii_label(label, text) for label in labels]
    result = ".".join(out)
    if out[-1].isdigit():
        try:
            result = str(ipaddress.IPv4Address(result))
        except ValueError:
            raise _bad_host(text, "not a valid IPv4 address") from None
    if len(result) > _MAX_NAME:
        raise _bad_host(text, "too long")
    return result + ("." if trailing_dot else "")


def _ascii_label(label: str, text: str) -> str:
    """One label of the host name ``text``, lower-cased and in ASCII."""
    if not label:
        raise _bad_host(text, "empty label")
    try:
        ascii_label = label.lower() if label.isascii() else _idna_label(label)
    except UnicodeError:
        raise _bad_host(text, "not a valid international name") from None
    if not _LABEL_RE.match(ascii_label):
        raise _bad_host(text, "label too long" if len(ascii_label) > _MAX_LABEL else "invalid characters")
    return ascii_label


def _bad_host(text: str, reason: str) -> InvalidURL:
    shown = text if len(text) <= _SHOWN_HOST_CHARS else text[:_SHOWN_HOST_CHARS] + "..."
    return InvalidURL(f"bad host name {shown!r} ({reason})")


def _idna_label(label: str) -> str:
    """One non-ASCII label in ASCII, by UTS-46 as browsers do ("faß" -> "xn--fa-hia", not "fass").

    Labels that IDNA 2008 forbids but browsers still resolve (symbols such as "☃") fall
    back to IDNA 2003, which is how they were encoded before.
    """
    try:
        return idna.encode(label, uts46=True).decode("ascii")
    except idna.IDNAError:
        return label.encode("idna").decode("ascii")  # raises UnicodeError if invalid there too


def normalize_url(raw: str) -> str:
    """Normalise a URL like a browser would; raise :class:`InvalidURL` with a reason."""
    scheme, rest = _scheme(raw)
    rest = rest.lstrip("/\\")
    end = next((i for i, c in enumerate(rest) if c in "/\\?#"), len(rest))
    authority, tail = rest[:end], rest[end:].partition("#")[0]
    path, has_query, query = tail.partition("?")
    userinfo, _, hostport = authority.rpartition("@")
    host, port = _host_and_port(hostport)
    port_part = _port_part(port, scheme)
    user, path, query = _encoded(userinfo, path, query if has_query else None)
    return f"{scheme}://{user}{host}{port_part}{path}{query}"


def _scheme(raw: str) -> tuple[str, str]:
    """The lower-cased scheme (http or https) and the rest of the stripped URL."""
    s = raw.strip().strip(_STRIP)
    if not s:
        raise InvalidURL("empty URL")
    m = _SCHEME_RE.match(s)
    if not m:
        raise InvalidURL("not a URL")
    scheme, rest = m.group(1).lower(), s[m.end():]
    if scheme not in DEFAULT_PORTS:
        if len(scheme) == 1 or "." in scheme or rest[:1].isdigit():  # C:\..., host:port
            raise InvalidURL("not a URL")
        raise InvalidURL(f"unsupported scheme '{scheme}' (only http and https)")
    return scheme, rest


def _host_and_port(hostport: str) -> tuple[str, str]:
    """The normalised host of ``host[:port]`` or ``[IPv6][:port]``, and the port's text."""
    if hostport.startswith("["):
        close = hostport.find("]")
        literal, after = hostport[1:close], hostport[close + 1:]
        if close < 0 or "%" in literal or (after and not after.startswith(":")):
            raise InvalidURL(f"bad host name {hostport!r} (bad IPv6 address)")
        try:
            return f"[{ipaddress.IPv6Address(literal).compressed}]", after[1:]
        except ValueError:
            raise InvalidURL(f"bad host name {hostport!r} (bad IPv6 address)") from None
    host_text, _, port = hostport.partition(":")
    if not host_text:
        raise InvalidURL("no host in URL")
    try:
        return _host(host_text), port
    except UnicodeError:
        raise InvalidURL(f"bad host name {host_text!r} (undecodable)") from None


def _port_part(port: str, scheme: str) -> str:
    """``:port`` without leading zeros, or nothing for no port or the scheme's default."""
    digits = port.lstrip("0")[:_PORT_DIGITS] if port.isascii() and port.isdigit() else "x"
    if port and not (digits.isdigit() and 1 <= int(digits) <= _MAX_PORT):
        raise InvalidURL(f"bad port {port!r} (must be a number from 1 to {_MAX_PORT})")
    return f":{digits}" if port and int(digits) != DEFAULT_PORTS[scheme] else ""


def _encoded(userinfo: str, path: str, query: str | None) -> tuple[str, str, str]:
    """``user@``, the path with its dot segments resolved, and ``?query``, percent-encoded."""
    try:
        user = _quote(userinfo, _USER_SAFE) + "@" if userinfo else ""
        path = _quote(path, _PATH_SAFE)
        path = _remove_dots(path if path.startswith("/") else "/" + path)
        query = "?" + _quote(query, _QUERY_SAFE) if query is not None else ""
    except UnicodeEncodeError:
        raise InvalidURL("undecodable characters in URL") from None
    return user, path, query


def url_key(url: str) -> str:
    """32 hex chars: the first 128 bits of the SHA-256 of the normalised URL."""
    return normalized_key(normalize_url(url))


def normalized_key(url: str) -> str:
    """url_key() of a URL that normalize_url() already returned (no second normalisation),
    or the key of any other string taken exactly as it is (an invalid line's raw text)."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:KEY_HEX_CHARS]


def mask_url(url: str) -> str:
    """The URL for logs and reports: the password of ``user:password@host`` and the values of
    SECRET_PARAMS in the query or fragment become ``***``."""
    cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
    head, tail = url[:cut], _PARAM_RE.sub(_mask_param, url[cut:])
    m = _AUTHORITY_RE.match(head)
    if m:
        userinfo, at, hostport = m.group(1).rpartition("@")
        user, colon, password = userinfo.partition(":")
        if at and colon and password:
            head = f"{head[:m.start(1)]}{user}:***@{hostport}{head[m.end(1):]}"
    return head + tail


def _mask_param(m: re.Match[str]) -> str:
    name = unquote(m.group(2).replace("+", " ")).strip().lower()
    return f"{m.group(1)}{m.group(2)}=***" if m.group(3) and name in _SECRET_NAMES else m.group(0)


def host_of(url: str) -> Host:
    """(hostname, port) of a URL, the scheme's default port filled in: a host as --per-host counts them."""
    parts = urlsplit(url)
    return (parts.hostname or "", parts.port or DEFAULT_PORTS.get(parts.scheme, DEFAULT_PORTS["http"]))
