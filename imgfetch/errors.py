"""Run-level exceptions, all under ImgFetchError, builtins mixed in where they fit (a bad option is a
ValueError). Per-URL problems are never raised: they are records (``error_kind``, ``error``)."""
from __future__ import annotations

import re
from typing import Any, Callable


class ImgFetchError(Exception):
    """Base of every run-level failure imgfetch raises."""


class OptionError(ImgFetchError, ValueError):
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


class InvalidURL(ImgFetchError, ValueError):
    """A URL that cannot be downloaded; the message is the human-readable reason.

    Raised by ``imgfetch.urls.normalize_url``; a run records such a URL as ``invalid`` instead.
    """


class InputError(ImgFetchError):
    """The URL list cannot be read at all (missing, not text, no URL column)."""


class OutputError(ImgFetchError):
    """The output folder (or the manifest, or the errors file) cannot be used."""


class DiskFull(OutputError):
    """The disk filled up: the run stopped, with every finished download recorded."""


class Interrupted(ImgFetchError):
    """The run was stopped by a signal after cleaning up; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum


class PoolKeepsDying(ImgFetchError):
    """Worker processes die as soon as they start; the run cannot make progress."""


class WorkerInitFailed(ImgFetchError):
    """The user's initializer raised in a worker process."""


class MissingMainGuard(SystemExit, ImgFetchError):
    """A script calls imgfetch at its top level under spawn or forkserver.

    A SystemExit, so an uncaught one ends the script with its one-line message and no
    traceback; an ImgFetchError (and so an Exception), so callers can catch it.
    """
