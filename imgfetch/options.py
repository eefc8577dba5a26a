"""The one frozen options object shared by the CLI, the library and the workers."""
from __future__ import annotations

import dataclasses
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

KNOWN_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF")
START_METHODS = ("fork", "spawn", "forkserver")
VERIFY_MODES = ("fast", "full", "none")
NAMINGS = ("url", "hash", "index")
INPUT_FORMATS = ("txt", "csv", "tsv", "jsonl")
RECORD_FIELDS = (
    "url", "key", "line", "status", "path", "bytes", "sha256", "format", "width", "height",
    "http_status", "final_url", "error", "error_kind", "attempts", "elapsed_s", "pid", "fetched_at",
)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)


def usable_cpus() -> int:
    """CPUs this process may run on (affinity-aware where the OS says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def default_workers() -> int:
    """Two worker processes per usable CPU: downloads wait on the network far more than they compute."""
    return min(32, 2 * usable_cpus())


def default_start_method() -> str:
    """forkserver on Linux (Python 3.14's default there), spawn elsewhere."""
    return "forkserver" if sys.platform.startswith("linux") else "spawn"


def parse_size(text: str | int) -> int:
    """'50M' -> 52428800; plain numbers are bytes; K/M/G/T are powers of 1024."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"not a size: {text!r} (use e.g. 500K, 10M, 1G)")
    power = "KMGT".find(m.group(2).upper()) + 1 if m.group(2) else 0
    return int(float(m.group(1)) * 1024**power)


def _default_formats() -> tuple[str, ...]:
    return KNOWN_FORMATS


@dataclass(frozen=True)
class Options:
    """Every knob of a run. Field names are the CLI's long options with underscores."""

    workers: int = field(default_factory=default_workers)
    threads: int = 128
    start_method: str = field(default_factory=default_start_method)
    timeout: float = 10.0
    max_time: float = 30.0
    deadline: float | None = None
    max_bytes: int = 50 * 1024**2
    retries: int = 3
    backoff: float = 0.5
    max_retry_after: float = 60.0
    max_redirects: int = 10
    user_agent: str = "imgfetch"
    headers: tuple[tuple[str, str], ...] = ()
    proxy: str | None = None
    ca_bundle: str | None = None
    insecure: bool = False
    max_pixels: int = 89_478_485  # Pillow's own default bomb limit
    verify: str = "fast"
    formats: tuple[str, ...] = field(default_factory=_default_formats)
    naming: str = "url"
    subdirs: int | None = None
    overwrite: bool = False
    manifest: str | None = None
    errors: str | None = None
    input_format: str | None = None
    url_column: str = "url"
    url_key: str = "url"
    keep_columns: tuple[str, ...] = ()
    executor: str = "process"
    scheduler: str | None = None
    per_host: int | None = None
    rate: float | None = None
    progress: bool = True
    log_pids: bool = False
    # Library only: run in every worker process as it starts, as ProcessPoolExecutor's initializer.
    initializer: Callable[..., Any] | None = None
    initargs: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        for name in ("workers", "threads", "max_pixels"):
            _positive_int(name, getattr(self, name))
        for name in ("retries", "max_redirects"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise OptionError(f"{name} must be a whole number >= 0, got {value!r}", name)
        for name in ("timeout", "max_time", "deadline", "backoff", "max_retry_after"):
            value = getattr(self, name)
            if value is None and name == "deadline":
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
                raise OptionError(f"{name} must be a number, got {value!r}", name)
            if value <= 0 and name in ("timeout", "max_time", "deadline"):
                raise OptionError(f"{name} must be > 0, got {value!r}", name)
            if value < 0:
                raise OptionError(f"{name} must be >= 0, got {value!r}", name)
        object.__setattr__(self, "max_bytes", _size_option("max_bytes", self.max_bytes))
        for name in ("subdirs", "per_host"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        if self.rate is not None and (not isinstance(self.rate, (int, float)) or not self.rate > 0):
            raise OptionError(f"rate must be a number of requests per second > 0, got {self.rate!r}", "rate")
        if self.start_method not in START_METHODS:
            raise OptionError(f"start_method must be one of {', '.join(START_METHODS)}, got {self.start_method!r}",
                              "start_method")
        if self.verify not in VERIFY_MODES:
            raise OptionError(f"verify must be one of {', '.join(VERIFY_MODES)}, got {self.verify!r}", "verify")
        self._check_formats()
        self._check_naming()
        if self.input_format is not None and self.input_format not in INPUT_FORMATS:
            raise OptionError(f"input_format must be one of {', '.join(INPUT_FORMATS)}, got {self.input_format!r}",
                              "input_format")
        if self.executor not in ("process", "dask"):
            raise OptionError(f"executor must be process or dask, got {self.executor!r}", "executor")
        if self.scheduler and self.executor != "dask":
            raise OptionError("scheduler needs executor dask", "scheduler", "executor")
        if self.insecure and self.ca_bundle:
            raise OptionError("insecure and ca_bundle contradict each other; give one", "insecure", "ca_bundle")
        if self.ca_bundle and not os.path.isfile(self.ca_bundle):
            raise OptionError(f"ca_bundle: no such file: {self.ca_bundle}", "ca_bundle")
        if self.proxy and not re.match(r"^(https?|socks5h?)://", self.proxy, re.IGNORECASE):
            raise OptionError(f"proxy must be an http://, https:// or socks5:// URL, got {self.proxy!r}", "proxy")
        if self.proxy and self.proxy.lower().startswith("socks") and not _has_socks():
            raise OptionError("proxy socks5://... needs PySocks: pip install 'imgfetch[socks]'", "proxy")
        self._check_headers()
        if self.initializer is not None and not callable(self.initializer):
            raise OptionError(f"initializer must be callable, got {self.initializer!r}", "initializer")
        object.__setattr__(self, "initargs", tuple(self.initargs))
        clash = set(self.keep_columns) & set(RECORD_FIELDS)
        if clash:
            raise OptionError(f"keep_columns: {', '.join(sorted(clash))} would clash with a manifest field", "keep_columns")

    def _check_formats(self) -> None:
        if isinstance(self.formats, str):
            object.__setattr__(self, "formats", tuple(f for f in self.formats.split(",") if f.strip()))
        aliases = {"JPG": "JPEG", "TIF": "TIFF"}
        names = tuple(aliases.get(f.strip().upper(), f.strip().upper()) for f in self.formats)
        unknown = [f for f in names if f not in KNOWN_FORMATS]
        if unknown or not names:
            raise OptionError(f"formats: unknown format {', '.join(unknown) or '(none)'}; "
                             f"choose from {', '.join(KNOWN_FORMATS)}", "formats")
        object.__setattr__(self, "formats", names)

    def _check_naming(self) -> None:
        if self.naming.startswith("column:"):
            column = self.naming[len("column:"):]
            if column not in self.keep_columns:
                raise OptionError(f"naming column:{column} needs keep_columns {column}", "naming", "keep_columns")
        elif self.naming not in NAMINGS:
            raise OptionError(f"naming must be url, hash, index or column:NAME, got {self.naming!r}", "naming")

    def _check_headers(self) -> None:
        headers = []
        for item in self.headers:
            if isinstance(item, str):
                name, sep, value = item.partition(":")
                if not sep:
                    raise OptionError(f"headers must look like 'Name: value', got {item!r}", "headers")
                item = (name.strip(), value.strip())
            name, value = item
            if not re.match(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", name) or "\n" in value or "\r" in value:
                raise OptionError(f"headers: bad header {name!r}", "headers")
            headers.append((name, value))
        object.__setattr__(self, "headers", tuple(headers))
        object.__setattr__(self, "keep_columns", tuple(self.keep_columns))

    def replace(self, **changes: Any) -> "Options":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _has_socks() -> bool:
    try:
        import socks  # noqa: F401  (PySocks, which urllib3.contrib.socks needs)
    except ImportError:
        return False
    return True


class OptionError(ValueError):
    """A bad option, in the library's words (``workers must be ...``); ``names`` are the options it is about."""

    def __init__(self, message: str, *names: str) -> None:
        super().__init__(message)
        self.names = names

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), *self.names))

    def spelled(self, spell: Callable[[str], str]) -> str:
        """The message with each option name written by ``spell`` (the CLI passes its flags)."""
        text, position, parts = str(self), 0, []
        for name in self.names:  # names come before values in every message: replace their first use
            found = re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])").search(text, position)
            if found is not None:
                parts.append(text[position:found.start()] + spell(name))
                position = found.end()
        return "".join(parts) + text[position:]


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise OptionError(f"{name} must be a whole number >= 1, got {value!r}", name)


def _size_option(name: str, value: Any) -> int:
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise OptionError(f"{name}: {exc}", name) from None
    if size < 1:
        raise OptionError(f"{name} must be > 0, got {value!r}", name)
    return size


def make_options(**kwargs: Any) -> Options:
    """Options from keyword arguments; an unknown keyword is a ValueError naming it."""
    names = {f.name for f in dataclasses.fields(Options)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], sorted(names), n=1)
        raise OptionError(f"unknown option {unknown[0]!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
    return Options(**kwargs)
