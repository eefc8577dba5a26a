"""The library: fetch one URL in-process, or download a list through the pool; and ``Downloader``.

``download`` and ``iter_download`` run a list on the same driver as ``Downloader`` (the executor of
URLs, engine/downloader.py), so there is one path through the engine. ``fetch`` runs the same per-URL
pipeline as every worker (``engine/pipeline.py``), in this process: no pool, no manifest.

The keyword arguments are the fields of :class:`imgfetch.Options`; each signature is derived from their
declarations (options/keywords.py). ``None`` for an option whose default is computed asks for that default.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Union

from .errors import OutputError
from .options import Options
from .options.keywords import keyword_signature, options_from_keywords
from .records import FetchResult, Task, invalid_record
from .report.results import Results
from .store.files import TMP_PREFIX
from .urls import looks_like_url

if TYPE_CHECKING:  # Unpack is Python 3.11's; type checkers know typing_extensions' on 3.10 too
    from typing_extensions import Unpack

    from .options.typed import DownloadKeywords, FetchKeywords

URLs = Union[str, "os.PathLike[str]", Iterable[Union[str, Mapping[str, Any]]]]


def fetch(url: str, out_dir: str | os.PathLike[str], *, options: Options | None = None,
          **kwargs: Unpack[FetchKeywords]) -> FetchResult:
    """Fetch, validate and save one URL in this process (no pool, no manifest).

    >>> r = fetch("http://127.0.0.1:8000/img/0.jpg", "out")   # doctest: +SKIP
    >>> r.status, r.path
    ('ok', '0-1b2c3d4e5f.jpg')

    Never raises for a bad URL or server: look at ``r.status`` and ``r.error``.
    A bad option raises ValueError naming it (``timeout must be > 0, got 0``).
    The keywords are download()'s that apply to one URL; ``progress`` is taken too, so that one
    set of keyword arguments serves both (one URL draws no bar).
    """
    from .engine.folder import is_remote
    from .engine.pipeline import process_task
    from .errors import InvalidURL
    from .net.fetcher import Fetcher
    from .urls import normalize_url, normalized_key

    opts = options_from_keywords(fetch, kwargs, options)
    if opts.output_format != "files":  # one URL, one file: shards are a run's (download)
        opts = opts.replace(output_format="files")
    try:
        normalized = normalize_url(url)
    except InvalidURL as exc:
        return invalid_record(url, str(exc))
    if is_remote(out_dir):
        raise OutputError(f"fetch() saves a file in a local folder, not in {out_dir}; object storage takes "
                          "download(..., output_format='webdataset')")
    root = Path(out_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=root))
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
                  **kwargs: Unpack[DownloadKeywords]) -> Iterator[FetchResult]:
    """Download a list through the process pool, yielding records in the order they complete.

    Same arguments as :func:`download`. Options are checked now; the run starts when you
    iterate. Records go to the manifest as they arrive; breaking out of the loop stops the run.
    """
    from .engine.guard import check_main_guard
    from .engine.run import Run

    opts = options_from_keywords(iter_download, kwargs, options)
    check_main_guard(opts.start_method, opts.executor, opts.scheduler)
    return Run(_source(urls), out_dir, opts).results()


def download(urls: URLs, out_dir: str | os.PathLike[str], *, keep_records: bool = True,
             exit_on_second_signal: bool = False, progress_file: IO[str] | None = None, options: Options | None = None,
             **kwargs: Unpack[DownloadKeywords]) -> Results:
    """Download a list through the process pool; ``imgfetch get`` is this call.

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

    What a command-line tool wants: ``keep_records=False`` keeps no record in memory (each is in the
    manifest): the Results is empty, with the run's counts (``.counts``, ``.summary()``, ``.totals``);
    ``exit_on_second_signal``: a second Ctrl-C kills the workers and ends the process at once (exit
    status 128 + the signal) instead of raising KeyboardInterrupt; ``progress_file``: where the bar
    is drawn (stderr by default), and whose terminal ``progress=None`` looks at.
    """
    from .engine.guard import check_main_guard
    from .engine.run import Run
    from .errors import Interrupted

    opts = options_from_keywords(download, kwargs, options)
    check_main_guard(opts.start_method, opts.executor, opts.scheduler)
    run = Run(_source(urls), out_dir, opts, hard_exit_on_second_signal=exit_on_second_signal, records=keep_records,
              progress_file=progress_file)
    records: list[FetchResult] = []

    def results() -> Results:
        return Results(records, out_dir, run.summary, run.manifest_path, listed=run.lines,
                       counts_only=not keep_records)

    try:
        for record in run.results():
            if keep_records:
                records.append(record)
    except Interrupted as exc:
        exc.results = results()  # type: ignore[attr-defined]
        raise
    return results()


def __getattr__(name: str) -> Any:
    """``Downloader``, the executor of URLs (engine/downloader.py), imported on first use like the engine."""
    if name == "Downloader":
        from .engine.downloader import Downloader

        return Downloader
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _source(urls: Any) -> Any:
    """One URL given as a string is a list of one, unless a file of that name exists."""
    if isinstance(urls, str) and looks_like_url(urls) and not os.path.exists(urls):
        return [urls]
    return urls


fetch.__signature__ = keyword_signature(fetch, per_url=True)  # type: ignore[attr-defined]
download.__signature__ = keyword_signature(download)  # type: ignore[attr-defined]
iter_download.__signature__ = keyword_signature(iter_download)  # type: ignore[attr-defined]
