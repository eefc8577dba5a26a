"""The library: fetch one URL in-process, or download a list through the pool.

The keyword arguments are the fields of :class:`imgfetch.Options`. Each function's signature
(``help()``, ``inspect.signature``, a notebook's completion) is derived from the declarations in
``imgfetch/options/definitions.py``, with their types and defaults. ``None`` for an option whose
default is computed (``workers``, ``start_method``) asks for that default.

May import: imgfetch.options, imgfetch.errors, imgfetch.records, imgfetch.urls, imgfetch.net, imgfetch.engine, imgfetch.report
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Union

from .errors import OutputError
from .options import Options
from .options.spec import declared
from .records import INVALID, FetchResult, Task
from .report.results import Results
from .urls import looks_like_url

URLs = Union[str, "os.PathLike[str]", Iterable[Union[str, Mapping[str, Any]]]]


def fetch(url: str, out_dir: str | os.PathLike[str], *, options: Options | None = None, **kwargs: Any) -> FetchResult:
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

    opts = _options(fetch, kwargs, options)
    if opts.output_format != "files":  # one URL, one file: shards are a run's (download)
        opts = opts.replace(output_format="files")
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
        result = process_task(task, opts, Fetcher(opts), root, tmp, notes=False)  # no manifest, nothing to recover
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result.line = None
    if result.path:
        result.abspath = os.path.abspath(root / result.path)
    return result


def iter_download(urls: URLs, out_dir: str | os.PathLike[str], *, options: Options | None = None,
                  **kwargs: Any) -> Iterator[FetchResult]:
    """Download a list through the process pool, yielding records in the order they complete.

    Same arguments as :func:`download`. Options are checked now; the run starts when you
    iterate. Records go to the manifest as they arrive; breaking out of the loop stops the run.
    """
    from .engine.guard import check_main_guard
    from .engine.run import Run

    opts = _options(iter_download, kwargs, options)
    check_main_guard(opts.start_method, opts.executor, opts.scheduler)
    return Run(_source(urls), out_dir, opts).results()


def download(urls: URLs, out_dir: str | os.PathLike[str], *, options: Options | None = None,
             **kwargs: Any) -> Results:
    """Download a list through the process pool exactly as ``imgfetch get`` does.

    ``urls``: a list file (txt, csv, tsv, jsonl, optionally .gz) as a path, ``"-"`` for standard
    input, one URL as a string, or any iterable of URL strings (or of dicts with a ``url`` key).
    A string that looks like a URL is one URL unless a file of that name exists.

    Keyword arguments are ``imgfetch get``'s long options with underscores, plus ``progress``
    (None: a bar on a terminal or in Jupyter, none into a log file; True or False: always or never),
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

    opts = _options(download, kwargs, options)
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
    if isinstance(urls, str) and looks_like_url(urls) and not os.path.exists(urls):
        return [urls]
    return urls


def _options(function: Callable[..., Any], given: dict[str, Any], options: Options | None) -> Options:
    """Options from a function's keyword arguments, over ``options`` if given."""
    allowed = function.__signature__.parameters  # type: ignore[attr-defined]
    for name in given:
        if name not in allowed:
            close = difflib.get_close_matches(name, list(allowed), n=1)
            raise TypeError(f"{function.__name__}() got an unexpected keyword argument {name!r}"
                            + (f"; did you mean {close[0]!r}?" if close else ""))
    values = {name: value for name, value in given.items() if value is not None or not _computed(name)}
    if options is None:
        return Options(**values)
    return options.replace(**values) if values else options


def _computed(name: str) -> bool:
    """Whether an option's default is computed (None then asks for it)."""
    return _FIELDS[name].default_factory is not dataclasses.MISSING


_FIELDS = {f.name: f for f in dataclasses.fields(Options)}


def _signature(function: Callable[..., Any], per_url: bool) -> inspect.Signature:
    """The function's own parameters, then one keyword argument per option (per_url: only those of one URL)."""
    own = list(inspect.signature(function).parameters.values())[:-2]  # without options and **kwargs
    keywords = []
    for field, spec in declared(Options):
        if per_url and not spec.per_url:
            continue
        optional = " | None" if "None" in str(field.type) else ""
        annotation = spec.accepts or (f"Literal{list(spec.choices)}{optional}" if spec.choices else str(field.type))
        if _computed(field.name) and "None" not in annotation:
            annotation += " | None"
        default = None if _computed(field.name) else field.default
        keywords.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                          annotation=annotation))
    keywords.append(inspect.Parameter("options", inspect.Parameter.KEYWORD_ONLY, default=None,
                                      annotation="Options | None"))
    return inspect.Signature(own + keywords, return_annotation=inspect.signature(function).return_annotation)


fetch.__signature__ = _signature(fetch, per_url=True)  # type: ignore[attr-defined]
download.__signature__ = _signature(download, per_url=False)  # type: ignore[attr-defined]
iter_download.__signature__ = _signature(iter_download, per_url=False)  # type: ignore[attr-defined]
