"""Putting a finished shard's files in the output folder: the one place a Dask shard's outputs leave the
Dask worker's local disk.

Each file goes whole or not at all, in the order given (the file that says "complete" last): a rename when
the staging folder is on OUT's filesystem, else a copy to a hidden temporary name beside its final one and a
rename; to object storage, an upload (Destination.publish). So a kill mid-publish leaves whole files only,
and a shard without its last file counts as not done: it is redone and published again over them.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from .remote import Destination

PARTIAL = ".publishing-"  # a copy on its way in: hidden, with the publishing process's id


def publish(staged: list[tuple[str, str]], out: str | Destination) -> None:
    """Move each staged local file to ``out``/name (a '/'-separated relative name), in order."""
    if isinstance(out, Destination):
        for local, name in staged:
            out.publish(local, name)
            os.unlink(local)
        return
    root = Path(out)
    for local, name in staged:
        final = root / name
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(local, final)
            continue
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        partial = final.with_name(f".{final.name}{PARTIAL}{os.getpid()}")
        try:
            shutil.copyfile(local, partial)
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
        os.unlink(local)
