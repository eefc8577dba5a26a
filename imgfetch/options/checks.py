"""Checks for option values: each takes (name, value), returns the value to keep, or raises OptionError."""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Callable, Iterator

from ..errors import OptionError
from .spec import Check

SIZE_UNITS = "KMGT"  # powers of 1024
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an RFC 9110 token
_PROXY_SCHEMES = re.compile(r"^(https?|socks5h?)://", re.IGNORECASE)
FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF"}
MAX_PHASH_DISTANCE = 32  # of a 64-bit perceptual hash: more than half its bits is no likeness at all
_DIRECTIVE = re.compile(r"^[a-z][a-z0-9_-]*$")


def parse_size(text: str | int) -> int:
    """'50M' -> 52428800; plain numbers are bytes; K/M/G/T are powers of 1024."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"not a size: {text!r} (use e.g. 500K, 10M, 1G)")
    power = SIZE_UNITS.find(m.group(2).upper()) + 1 if m.group(2) else 0
    return int(float(m.group(1)) * 1024**power)


def whole(minimum: int, maximum: int | None = None) -> Check:
    """A whole number (not a bool) of at least ``minimum``, and at most ``maximum`` if given."""
    bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"

    def check(name: str, value: Any) -> Any:
        if (not isinstance(value, int) or isinstance(value, bool) or value < minimum
                or (maximum is not None and value > maximum)):
            raise OptionError(f"{name} must be a whole number {bounds}, got {value!r}", name)
        return value
    return check


def number(*, above: float | None = None, at_least: float | None = None, at_most: float | None = None,
           words: str | None = None) -> Check:
    """A real number (not a bool, not NaN) above or at least a bound, and at most another; ``words`` replaces
    every message."""
    if at_least is not None and at_most is not None:
        bounds = f"between {at_least:g} and {at_most:g}"
    else:
        bounds = " and ".join(f"{sign} {bound:g}" for sign, bound in ((">", above), (">=", at_least), ("<=", at_most))
                              if bound is not None)

    def check(name: str, value: Any) -> Any:
        real = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
        inside = real and ((above is None or value > above) and (at_least is None or value >= at_least)
                           and (at_most is None or value <= at_most))
        if not inside:
            wanted = words or ("a number" if not real else bounds)
            raise OptionError(f"{name} must be {wanted}, got {value!r}", name)
        return value
    return check


def whole_numbers(minimum: int) -> Check:
    """Whole numbers of at least ``minimum``, as a sequence or as text like 1,2,4: sorted, each once."""
    each = whole(minimum)

    def check(name: str, value: Any) -> tuple[int, ...]:
        if isinstance(value, str):
            try:
                value = [int(part) for part in comma_list(value)]
            except ValueError:
                raise OptionError(f"{name} takes comma-separated whole numbers like 1,2,4, got {value!r}", name) from None
        numbers = tuple(sorted({each(name, n) for n in value}))
        if not numbers:
            raise OptionError(f"{name} takes at least one whole number", name)
        return numbers
    return check


def each_one_of(choices: tuple[str, ...]) -> Check:
    """Some of ``choices``, as a sequence or comma-separated text, in the order given."""
    each = one_of(choices)
    return lambda name, value: tuple(each(name, item) for item in (comma_list(value) if isinstance(value, str) else value))


def optional(inner: Check) -> Check:
    """None, or what ``inner`` accepts."""
    return lambda name, value: None if value is None else inner(name, value)


def one_of(choices: tuple[str, ...]) -> Check:
    def check(name: str, value: Any) -> Any:
        if value not in choices:
            raise OptionError(f"{name} must be one of {', '.join(choices)}, got {value!r}", name)
        return value
    return check


def size(name: str, value: Any) -> int:
    """A size in bytes, given as a number or as text such as 50M."""
    try:
        parsed = parse_size(value)
    except ValueError as exc:
        raise OptionError(f"{name}: {exc}", name) from None
    if parsed < 1:
        raise OptionError(f"{name} must be > 0, got {value!r}", name)
    return parsed


def formats(known: tuple[str, ...]) -> Check:
    """Image format names, as a tuple or comma-separated text; JPG and TIF are aliases."""
    def check(name: str, value: Any) -> tuple[str, ...]:
        if value is None:  # the default: every known format
            return known
        items = comma_list(value) if isinstance(value, str) else value
        names = tuple(FORMAT_ALIASES.get(f.strip().upper(), f.strip().upper()) for f in items if f.strip())
        unknown = [f for f in names if f not in known]
        if unknown or not names:
            raise OptionError(f"{name}: unknown format {', '.join(unknown) or '(none)'}; "
                              f"choose from {', '.join(known)}", name)
        return names
    return check


def _pairs(name: str, value: Any, sep: str, shape: str, parse: Callable[[str], Any]) -> Iterator[tuple[Any, Any]]:
    """(key, value) pairs from a mapping, from pairs, or from ``KEY<sep>VALUE`` strings (VALUE parsed)."""
    for item in value.items() if isinstance(value, Mapping) else value:
        if isinstance(item, str):
            key, found, text = item.partition(sep)
            if not found or not key.strip():
                raise OptionError(f"{name} must look like {shape}, got {item!r}", name)
            item = (key.strip(), parse(text))
        yield item


def headers(name: str, value: Any) -> tuple[tuple[str, str], ...]:
    """Request headers: a mapping, or ``Name: value`` strings or (name, value) pairs."""
    kept = tuple(_pairs(name, value, ":", "'Name: value'", str.strip))
    for key, text in kept:
        if not _HEADER_NAME.match(key) or "\n" in text or "\r" in text:
            raise OptionError(f"{name}: bad header {key!r}", name)
    return kept


def proxy(name: str, value: Any) -> Any:
    if value is None:
        return None
    if not _PROXY_SCHEMES.match(value):
        raise OptionError(f"{name} must be an http://, https:// or socks5:// URL, got {value!r}", name)
    if value.lower().startswith("socks") and not _has_module("socks"):  # PySocks, which urllib3.contrib.socks needs
        raise OptionError(f"{name} socks5://... needs PySocks: pip install 'imgfetch[socks]'", name)
    return value


def path(name: str, value: Any) -> Any:
    """None, or a path as text (a pathlib.Path is taken too)."""
    return None if value is None else os.fspath(value)


def existing_file(name: str, value: Any) -> Any:
    value = path(name, value)
    if value is not None and not os.path.isfile(value):
        raise OptionError(f"{name}: no such file: {value}", name)
    return value


def callable_or_none(name: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise OptionError(f"{name} must be callable, got {value!r}", name)
    return value


def columns(forbidden: tuple[str, ...]) -> Check:
    """Column names, as a tuple or comma-separated text, none of them in ``forbidden``."""
    def check(name: str, value: Any) -> tuple[str, ...]:
        items = comma_list(value) if isinstance(value, str) else value
        kept = tuple(c.strip() for c in items if c.strip())
        clash = set(kept) & set(forbidden)
        if clash:
            raise OptionError(f"{name}: {', '.join(sorted(clash))} would clash with a manifest field", name)
        return kept
    return check


def as_tuple(name: str, value: Any) -> tuple[Any, ...]:
    return tuple(value)


def comma_list(text: str) -> tuple[str, ...]:
    """argparse type for A,B,C."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def dedup(name: str, value: Any) -> Any:
    """None, exact, or phash:D (D a whole number of bits from 0 to 32); phash needs imagehash."""
    if value is None or value == "exact":
        return value
    mode, _, bits = str(value).partition(":")
    if mode != "phash" or not bits.isdigit() or int(bits) > MAX_PHASH_DISTANCE:
        raise OptionError(f"{name} must be exact or phash:D with D from 0 to {MAX_PHASH_DISTANCE} "
                          f"(e.g. phash:4), got {value!r}", name)
    if not _has_module("imagehash"):
        raise OptionError(f"{name} {value} needs imagehash: pip install 'imgfetch[phash]'", name)
    return f"phash:{int(bits)}"


def directives(name: str, value: Any) -> tuple[str, ...]:
    """X-Robots-Tag directives, as a tuple or comma-separated text; none (or nothing) for none."""
    items = comma_list(value) if isinstance(value, str) else value
    kept = tuple(item.strip().lower() for item in items if item.strip())
    if kept == ("none",):
        return ()
    bad = [item for item in kept if not _DIRECTIVE.match(item)]
    if bad:
        raise OptionError(f"{name}: {bad[0]!r} is not a directive (like noai)", name)
    return kept


def matching(pattern: str, words: str) -> Check:
    """Text that ``pattern`` matches whole; else an OptionError saying that it must be ``words``."""
    regex = re.compile(pattern)

    def check(name: str, value: Any) -> Any:
        if not isinstance(value, str) or not regex.fullmatch(value):
            raise OptionError(f"{name} must be {words}, got {value!r}", name)
        return value
    return check


# A user-agent product token, as robots rules name crawlers; the +URL of a crawler's page.
token = matching(r"[A-Za-z0-9._-]+", "a name of letters, digits, '.', '_' or '-'")
http_url = matching(r"https?://[^\s;()]+", "an http:// or https:// URL without spaces, ';' or brackets")


def _has_module(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def storage_options(name: str, value: Any) -> tuple[tuple[str, Any], ...]:
    """fsspec storage options: a mapping, or ``KEY=VALUE`` strings (VALUE read as JSON when it is JSON, else
    kept as a string; a dotted KEY nests, as in client_kwargs.endpoint_url) or (key, value) pairs."""
    kept = tuple(_pairs(name, value, "=", "KEY=VALUE", _json_or_text))
    for key, _ in kept:
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            raise OptionError(f"{name}: bad key {key!r}", name)
    return kept


def _json_or_text(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text
