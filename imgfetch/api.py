"""The library: fetch one URL in-process, or download a list through the pool.

The keyword arguments are the fields of :class:`imgfetch.Options`, spelled out so that editors
and notebooks can complete them; ``tests/test_results.py`` checks that they match. ``None``
for ``workers``, ``start_method`` and ``formats`` means the computed default.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping, Sequence, Union

from .errors import OutputError
from .options import Options, make_options
from .records import INVALID, FetchResult, Task
from .report.results import Results

URLs = Union[str, "os.PathLike[str]", Iterable[Union[str, Mapping[str, Any]]]]
Headers = Union[Mapping[str, str], Sequence[Union[str, tuple[str, str]]]]
_FACTORY_DEFAULTS = ("workers", "start_method", "formats")  # None: the computed default
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def fetch(url: str, out_dir: str | os.PathLike[str], *,
          timeout: float = 10.0, max_time: float = 30.0, deadline: float | None = None,
          max_bytes: int | str = 50 * 1024**2, retries: int = 3, backoff: float = 0.5,
          max_retry_after: float = 60.0, max_redirects: int = 10, user_agent: str = "imgfetch",
          headers: Headers = (), proxy: str | None = None, ca_bundle: str | os.PathLike[str] | None = None,
          insecure: bool = False, max_pixels: int = 89_478_485, verify: Literal["fast", "full", "none"] = "fast",
          formats: Sequence[str] | str | None = None, naming: str = "url", subdirs: int | None = None,
          overwrite: bool = False, progress: bool = True, log_pids: bool = False,
          options: Options | None = None) -> FetchResult:
    """Fetch, validate and save one URL in this process (no pool, no manifest).

    >>> r = fetch("http://127.0.0.1:8000/img/0.jpg", "out")   # doctest: +SKIP
    >>> r.status, r.path
    ('ok', '0-1b2c3d4e5f.jpg')

    Never raises for a bad URL or server: look at ``r.status`` and ``r.error``.
    A bad option raises ValueError naming it (``timeout must be > 0, got 0``).
    The keywords are download()'s that apply to one URL; ``progress`` is taken too, so that one
    set of keyword arguments serves both (one URL draws no bar).
    """
    from .net.fetcher import Fetcher
    from .urls import InvalidURL, mask_url, normalize_url, normalized_key
    from .engine.worker import process_task

    opts = _options(locals(), options)
    try:
        normalized = normalize_url(url)
    except InvalidURL as exc:
        return FetchResult(url=mask_url(url), key=normalized_key(url), line=None, status=INVALID, error=str(exc),
                           error_kind="invalid")
    root = Path(out_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".imgfetch-tmp-", dir=root))
    except OSError as exc:
        raise OutputError(f"cannot use output folder {root}: {exc.strerror or exc}") from None
    try:
        task = Task(normalized, normalized_key(normalized), 1)
        result = process_task(task, opts, Fetcher(opts), root, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result.line = None
    if result.path:
        result.abspath = os.path.abspath(root / result.path)
    return result


def iter_download(urls: URLs, out_dir: str | os.PathLike[str], *,
                  workers: int | None = None, threads: int = 128,
                  start_method: Literal["fork", "spawn", "forkserver"] | None = None,
                  timeout: float = 10.0, max_time: float = 30.0, deadline: float | None = None,
                  max_bytes: int | str = 50 * 1024**2, retries: int = 3, backoff: float = 0.5,
                  max_retry_after: float = 60.0, max_redirects: int = 10, user_agent: str = "imgfetch",
                  headers: Headers = (), proxy: str | None = None, ca_bundle: str | os.PathLike[str] | None = None,
                  insecure: bool = False, max_pixels: int = 89_478_485,
                  verify: Literal["fast", "full", "none"] = "fast", formats: Sequence[str] | str | None = None,
                  naming: str = "url", subdirs: int | None = None, overwrite: bool = False,
                  manifest: str | os.PathLike[str] | None = None, errors: str | os.PathLike[str] | None = None,
                  input_format: Literal["txt", "csv", "tsv", "jsonl"] | None = None, url_column: str = "url",
                  url_key: str = "url", keep_columns: Sequence[str] = (),
                  executor: Literal["process", "dask"] = "process", scheduler: str | None = None,
                  per_host: int | None = None, rate: float | None = None, progress: bool = True,
                  log_pids: bool = False, initializer: Callable[..., Any] | None = None,
                  initargs: tuple[Any, ...] = (), options: Options | None = None) -> Iterator[FetchResult]:
    """Download a list through the process pool, yielding records in the order they complete.

    Same arguments as :func:`download`. Options are checked now; the run starts when you
    iterate. Records go to the manifest as they arrive; breaking out of the loop stops the run.
    """
    from .engine.guard import check_main_guard
    from .engine.run import Run

    opts = _options(locals(), options)
    check_main_guard(opts.start_method, opts.executor, opts.scheduler)
    return Run(_source(urls), out_dir, opts).results()


def download(urls: URLs, out_dir: str | os.PathLike[str], *,
             workers: int | None = None, threads: int = 128,
             start_method: Literal["fork", "spawn", "forkserver"] | None = None,
             timeout: float = 10.0, max_time: float = 30.0, deadline: float | None = None,
             max_bytes: int | str = 50 * 1024**2, retries: int = 3, backoff: float = 0.5,
             max_retry_after: float = 60.0, max_redirects: int = 10, user_agent: str = "imgfetch",
             headers: Headers = (), proxy: str | None = None, ca_bundle: str | os.PathLike[str] | None = None,
             insecure: bool = False, max_pixels: int = 89_478_485,
             verify: Literal["fast", "full", "none"] = "fast", formats: Sequence[str] | str | None = None,
             naming: str = "url", subdirs: int | None = None, overwrite: bool = False,
             manifest: str | os.PathLike[str] | None = None, errors: str | os.PathLike[str] | None = None,
             input_format: Literal["txt", "csv", "tsv", "jsonl"] | None = None, url_column: str = "url",
             url_key: str = "url", keep_columns: Sequence[str] = (),
             executor: Literal["process", "dask"] = "process", scheduler: str | None = None,
             per_host: int | None = None, rate: float | None = None, progress: bool = True,
             log_pids: bool = False, initializer: Callable[..., Any] | None = None,
             initargs: tuple[Any, ...] = (), options: Options | None = None) -> Results:
    """Download a list through the process pool exactly as ``imgfetch get`` does.

    ``urls``: a list file (txt, csv, tsv, jsonl, optionally .gz) as a path, ``"-"`` for standard
    input, one URL as a string, or any iterable of URL strings (or of dicts with a ``url`` key).
    A string that looks like a URL is one URL unless a file of that name exists.

    Keyword arguments are ``imgfetch get``'s long options with underscores, plus ``progress``,
    ``initializer`` and ``initargs`` (run in each worker process as it starts); or pass a whole
    :class:`Options` as ``options`` (other keywords then override its fields).

    Returns a :class:`~imgfetch.results.Results`: a list of one record per input URL, in input
    order, with ``.ok``, ``.failed``, ``.summary()``, ``.to_pandas()`` and ``.show()``.
    Never raises for a single bad URL. A bad option raises ValueError naming it
    (``workers must be a whole number >= 1, got 0``); run-level problems raise ImgFetchError.
    On Ctrl-C (or SIGTERM) it raises :class:`~imgfetch.Interrupted`, whose ``results`` holds
    what finished; calling again resumes.
    """
    from .errors import Interrupted
    from .engine.guard import check_main_guard
    from .engine.run import Run

    opts = _options(locals(), options)
    check_main_guard(opts.start_method, opts.executor, opts.scheduler)
    run = Run(_source(urls), out_dir, opts)
    records: list[FetchResult] = []
    try:
        records.extend(run.results())
    except Interrupted as exc:
        exc.results = Results(records, out_dir, run.summary, run.manifest_path)  # type: ignore[attr-defined]
        raise
    return Results(records, out_dir, run.summary, run.manifest_path)


def _source(urls: Any) -> Any:
    """One URL given as a string is a list of one, unless a file of that name exists."""
    if isinstance(urls, str) and _URL.match(urls) and not os.path.exists(urls):
        return [urls]
    return urls


_FIELDS = {f.name: f for f in dataclasses.fields(Options)}


def _options(given: dict[str, Any], options: Options | None) -> Options:
    """Options from a function's keyword arguments (its ``locals()``), over ``options`` if given."""
    values = {name: value for name, value in given.items() if name in _FIELDS}
    for name in ("manifest", "errors", "ca_bundle"):
        if isinstance(values.get(name), os.PathLike):
            values[name] = os.fspath(values[name])
    if isinstance(values.get("headers"), Mapping):
        values["headers"] = tuple(values["headers"].items())
    if isinstance(values.get("keep_columns"), str):
        values["keep_columns"] = tuple(c.strip() for c in values["keep_columns"].split(",") if c.strip())
    for name in _FACTORY_DEFAULTS:
        if values.get(name, 0) is None:
            del values[name]
    if options is None:
        return make_options(**values)
    changed = {name: value for name, value in values.items()
               if _FIELDS[name].default is dataclasses.MISSING or value != _FIELDS[name].default}
    return options.replace(**changed) if changed else options
