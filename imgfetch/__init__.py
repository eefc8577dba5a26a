"""imgfetch: a parallel image downloader — a URL list in, validated images on disk.

>>> from imgfetch import fetch, download, iter_download, Downloader, read_manifest, show   # doctest: +SKIP
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .lazy import lazy_names

__version__ = "0.1.0"

__all__ = [
    "fetch", "download", "iter_download", "Downloader", "read_manifest", "show", "Options", "FetchResult", "Results",
    "ErrorKind", "ImgFetchError", "OptionError", "InvalidURL", "InputError", "OutputError", "DiskFull", "Interrupted",
    "PoolKeepsDying", "WorkerInitFailed", "MissingMainGuard", "__version__",
]

# Imported on first use, so `imgfetch --help` does not pay for requests and Pillow.
_LAZY = {
    "fetch": "api", "download": "api", "iter_download": "api", "Downloader": "api", "Options": "options",
    "read_manifest": "store.reading", "show": "report.contact", "Results": "report.results", "FetchResult": "records",
    "ErrorKind": "records", **dict.fromkeys(("ImgFetchError", "OptionError", "InvalidURL", "InputError", "OutputError",
                                             "DiskFull", "Interrupted", "PoolKeepsDying", "WorkerInitFailed",
                                             "MissingMainGuard"), "errors"),
}

if TYPE_CHECKING:
    from .api import download, fetch, iter_download
    from .engine.downloader import Downloader
    from .errors import (
        DiskFull,
        ImgFetchError,
        InputError,
        Interrupted,
        InvalidURL,
        MissingMainGuard,
        OptionError,
        OutputError,
        PoolKeepsDying,
        WorkerInitFailed,
    )
    from .options import Options
    from .records import ErrorKind, FetchResult
    from .report.contact import show
    from .report.results import Results
    from .store.reading import read_manifest

__getattr__ = lazy_names(__name__, _LAZY)


logging.getLogger(__name__).addHandler(logging.NullHandler())
