"""The library: fetch one URL in-process, or download a list through the pool."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import OutputError
from .fetcher import Fetcher
from .options import Options, make_options
from .records import INVALID, FetchResult, Task
from .sources import InvalidURL, mask_url, normalize_url, normalized_key
from .worker import process_task


def fetch(url: str, out_dir: str | os.PathLike[str], **options: Any) -> FetchResult:
    """Fetch, validate and save one URL in this process (no pool, no manifest).

    >>> result = fetch("http://127.0.0.1:8000/img/0.jpg", "out")   # doctest: +SKIP
    >>> result.status, result.path
    ('ok', '0-1b2c3d4e5f.jpg')

    Never raises for a bad URL or server: look at ``result.status`` and ``result.error``.
    Bad options raise ValueError naming the option.
    """
    opts = _options(options)
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
    return result


def iter_download(urls: Any, out_dir: str | os.PathLike[str], **options: Any) -> Iterator[FetchResult]:
    """Download a list through the process pool, yielding records as they complete.

    ``urls`` is a path to a list file (txt, csv, tsv, jsonl, optionally .gz), ``"-"`` for
    standard input, or any iterable of URL strings (or of dicts with a ``url`` key).
    Records go to ``OUT/manifest.jsonl`` as they arrive; a re-run skips what is done.
    """
    from .runner import Run

    yield from Run(urls, out_dir, _options(options)).results()


def download(urls: Any, out_dir: str | os.PathLike[str], **options: Any) -> list[FetchResult]:
    """Download a list through the process pool exactly as ``imgfetch get`` does.

    Returns one record per input URL. Never raises for a single bad URL; bad options
    raise ValueError naming the option; run-level problems raise ImgFetchError.
    """
    return list(iter_download(urls, out_dir, **options))


def _options(options: dict[str, Any]) -> Options:
    given = options.get("options")
    if isinstance(given, Options):
        rest = {k: v for k, v in options.items() if k != "options"}
        return given.replace(**rest) if rest else given
    return make_options(**options)

