"""One URL: normalising it to the form that is fetched and keyed, and masking its secrets for logs.

A leaf module: it imports nothing from imgfetch, so every part of the flow may use it.
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
from functools import lru_cache
from urllib.parse import unquote

import idna

# Query (and fragment) parameters whose values mask_url() hides, compared case-insensitively.
SECRET_PARAMS = ("X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "X-Goog-Signature",
                 "X-Goog-Credential", "Signature", "sig", "token", "access_token", "api_key", "apikey",
                 "key", "password", "passwd", "secret", "auth", "session", "sessionid")
_SECRET_NAMES = frozenset(name.lower() for name in SECRET_PARAMS)
_PARAM_RE = re.compile(r"([?&;#])([^=&;#]*)=([^&;#]*)")


class InvalidURL(ValueError):
    """A URL that cannot be downloaded; the message is the human-readable reason."""


_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_STRIP = "".join(map(chr, range(33)))  # C0 controls and space, like browsers
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_USER_SAFE = _UNRESERVED | frozenset(b"!$&'()*+,;=:")
_PATH_SAFE = _USER_SAFE | frozenset(b"@/")
_QUERY_SAFE = _PATH_SAFE | frozenset(b"?")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_LABEL_RE = re.compile(r"[a-z0-9_-]{1,63}\Z")
_DOTS_RE = re.compile("[.\u3002\uff0e\uff61]")
_DOT, _DOTDOT = {".", "%2E"}, {"..", ".%2E", "%2E.", "%2E%2E"}
_MAX_HOST_TEXT = 253 * 9  # a 253-character name, every character percent-encoded UTF-8 (%E4%B8%AD)


def _quote(text: str, safe: frozenset[int]) -> str:
    """Percent-encode ``text`` (UTF-8), keeping ``safe`` bytes and valid ``%XX`` escapes."""
    data, out, i = text.encode("utf-8"), [], 0
    while i < len(data):
        b = data[i]
        if b == 0x25 and i + 2 < len(data) and data[i + 1] in _HEX and data[i + 2] in _HEX:
            out.append("%" + data[i + 1:i + 3].decode("ascii").upper())
            i += 3
            continue
        out.append(chr(b) if b in safe else f"%{b:02X}")
        i += 1
    return "".join(out)


def _remove_dots(path: str) -> str:
    """Resolve ``.`` and ``..`` segments of an absolute, already-quoted path."""
    segments, out = path.split("/")[1:], []
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


@lru_cache(maxsize=8192)  # a list has few hosts and many URLs: validate each host once
def _host(text: str) -> str:
    """Lower-case and IDNA-encode a host name (or check a dotted IPv4 address)."""
    def bad(reason: str) -> InvalidURL:
        shown = text if len(text) <= 100 else text[:100] + "..."
        return InvalidURL(f"bad host name {shown!r} ({reason})")

    if len(text) > _MAX_HOST_TEXT:  # before IDNA, whose cost grows with its input
        raise bad("too long")
    host = unquote(text, errors="strict") if "%" in text else text
    labels = _DOTS_RE.split(host)
    trailing_dot = len(labels) > 1 and labels[-1] == ""
    if trailing_dot:
        labels.pop()
    out = []
    for label in labels:
        if not label:
            raise bad("empty label")
        try:
            ascii_label = label.lower() if label.isascii() else _idna_label(label)
        except UnicodeError:
            raise bad("not a valid international name") from None
        if not _LABEL_RE.match(ascii_label):
            raise bad("label too long" if len(ascii_label) > 63 else "invalid characters")
        out.append(ascii_label)
    result = ".".join(out)
    if out[-1].isdigit():
        try:
            result = str(ipaddress.IPv4Address(result))
        except ValueError:
            raise bad("not a valid IPv4 address") from None
    if len(result) > 253:
        raise bad("too long")
    return result + ("." if trailing_dot else "")


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
    s = raw.strip().strip(_STRIP)
    if not s:
        raise InvalidURL("empty URL")
    m = _SCHEME_RE.match(s)
    if not m:
        raise InvalidURL("not a URL")
    scheme, rest = m.group(1).lower(), s[m.end():]
    if scheme not in _DEFAULT_PORTS:
        if len(scheme) == 1 or "." in scheme or rest[:1].isdigit():  # C:\..., host:port
            raise InvalidURL("not a URL")
        raise InvalidURL(f"unsupported scheme '{scheme}' (only http and https)")
    rest = rest.lstrip("/\\")
    end = next((i for i, c in enumerate(rest) if c in "/\\?#"), len(rest))
    authority, tail = rest[:end], rest[end:].partition("#")[0]
    path, has_query, query = tail.partition("?")
    userinfo, at, hostport = authority.rpartition("@")
    if hostport.startswith("["):
        close = hostport.find("]")
        literal, after = hostport[1:close], hostport[close + 1:]
        if close < 0 or "%" in literal or (after and not after.startswith(":")):
            raise InvalidURL(f"bad host name {hostport!r} (bad IPv6 address)")
        try:
            host = f"[{ipaddress.IPv6Address(literal).compressed}]"
        except ValueError:
            raise InvalidURL(f"bad host name {hostport!r} (bad IPv6 address)") from None
        port = after[1:]
    else:
        host_text, _, port = hostport.partition(":") if ":" in hostport else (hostport, "", "")
        if not host_text:
            raise InvalidURL("no host in URL")
        try:
            host = _host(host_text)
        except UnicodeError:
            raise InvalidURL(f"bad host name {host_text!r} (undecodable)") from None
    digits = port.lstrip("0")[:6] if port.isascii() and port.isdigit() else "x"
    if port and not (digits.isdigit() and 1 <= int(digits) <= 65535):
        raise InvalidURL(f"bad port {port!r} (must be a number from 1 to 65535)")
    port = digits if port else ""
    try:
        user = _quote(userinfo, _USER_SAFE) + "@" if userinfo else ""
        path = _quote(path, _PATH_SAFE)
        path = _remove_dots(path if path.startswith("/") else "/" + path)
        query = "?" + _quote(query, _QUERY_SAFE) if has_query else ""
    except UnicodeEncodeError:
        raise InvalidURL("undecodable characters in URL") from None
    port_part = f":{port}" if port and port != _DEFAULT_PORTS[scheme] else ""
    return f"{scheme}://{user}{host}{port_part}{path}{query}"


def url_key(url: str) -> str:
    """32 hex chars: the first 128 bits of the SHA-256 of the normalised URL."""
    return normalized_key(normalize_url(url))


def normalized_key(url: str) -> str:
    """url_key() of a URL that normalize_url() already returned (no second normalisation),
    or the key of any other string taken exactly as it is (an invalid line's raw text)."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def mask_url(url: str) -> str:
    """The URL for logs and reports: the password of ``user:password@host`` and the values of
    SECRET_PARAMS in the query or fragment become ``***``."""
    cut = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
    head, tail = url[:cut], _PARAM_RE.sub(_mask_param, url[cut:])
    m = re.match(r"[A-Za-z][A-Za-z0-9+.\-]*://([^/?#\\]*)", head)
    if m:
        userinfo, at, hostport = m.group(1).rpartition("@")
        user, colon, password = userinfo.partition(":")
        if at and colon and password:
            head = f"{head[:m.start(1)]}{user}:***@{hostport}{head[m.end(1):]}"
    return head + tail


def _mask_param(m: re.Match[str]) -> str:
    name = unquote(m.group(2).replace("+", " ")).strip().lower()
    return f"{m.group(1)}{m.group(2)}=***" if m.group(3) and name in _SECRET_NAMES else m.group(0)
