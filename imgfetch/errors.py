"""Run-level exceptions. Per-URL problems are never raised: they are records."""
from __future__ import annotations


class ImgFetchError(Exception):
    """Base of every run-level failure imgfetch raises."""


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
