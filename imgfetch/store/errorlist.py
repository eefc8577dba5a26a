"""The ``--errors FILE`` list: the failed URLs in full, ready to feed back in.

It is written under a temporary name beside FILE and renamed over FILE when the run ends, so
FILE is never opened for writing while a run may still be reading it, and a run that dies
leaves FILE as it was. Its first line is a comment that marks it as ours; replacing a file
without that mark is announced first.
"""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import IO

from ..errors import OutputError
from .manifest import write_error

log = logging.getLogger(__name__)
ERRORS_FILE_MODE = 0o600  # it lists full URLs, credentials included: for the owner only
MARK = "# imgfetch --errors:"  # the first line of every errors file imgfetch writes ('#' lines are comments in a list)


class ErrorsList:
    """Collects failed URLs in a temporary file; ``commit`` puts it in place."""

    def __init__(self, path: Path, manifest: Path) -> None:
        self.path = path
        self._tmp = path.with_name(f".{path.name}.imgfetch-partial")
        self._handle: IO[str] | None = None
        try:
            if path.is_dir():
                raise IsADirectoryError(21, "is a folder", str(path))
            if path.exists() and not _is_ours(path):
                log.warning("--errors %s: that file exists and imgfetch did not write it; it is replaced "
                            "when the run ends", path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                         ERRORS_FILE_MODE)
            os.fchmod(fd, ERRORS_FILE_MODE)
            self._handle = os.fdopen(fd, "w", encoding="utf-8")
            self._handle.write(f"{MARK} the URLs that failed in the last run with manifest {manifest}\n")
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write {exc.filename or path}: {exc.strerror or exc}") from None

    def add(self, url: str) -> None:
        assert self._handle is not None
        try:
            self._handle.write(url + "\n")
        except OSError as exc:
            raise write_error(self.path, exc) from None

    def commit(self) -> None:
        """Flush and rename over FILE (safe to call twice)."""
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        try:
            handle.close()
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self.discard()
            raise write_error(self.path, exc) from None

    def discard(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None
        with contextlib.suppress(OSError):
            os.unlink(self._tmp)


def _is_ours(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.readline().startswith(MARK)
    except OSError:
        return False
