"""Where ``imgfetch bench`` saves each run's downloads: a new folder under ``--keep DIR``, or a
temporary one that is removed when the benchmark ends. Nothing already on disk is ever touched.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from ..errors import OutputError

MAX_SAME_NAME = 999  # folders called name, name-2 ... name-999: then give up


def keep_folder(keep: str) -> Path:
    """A new folder of our own under --keep DIR: nothing already there is touched."""
    parent = Path(keep)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        path = fresh_folder(parent, time.strftime("bench-%Y%m%d-%H%M%S"))
    except OSError as exc:
        raise OutputError(f"cannot use --keep {keep}: {exc.strerror or exc}") from None
    if path is None:
        raise OutputError(f"cannot use --keep {keep}: too many runs started this second")
    return path


def fresh_folder(parent: Path, name: str) -> Path | None:
    """Create parent/name, or name-2, name-3 ... if taken; None if all MAX_SAME_NAME are taken."""
    for n in range(1, MAX_SAME_NAME + 1):
        path = parent / (name if n == 1 else f"{name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    return None


def scratch_folder(keep: Path | None, stack: ExitStack, name: str) -> Path:
    """A fresh folder for one run: under our --keep folder, or a temporary one removed at the end."""
    if keep:
        fresh = fresh_folder(keep, name)
        if fresh is not None:
            return fresh
    path = Path(tempfile.mkdtemp(prefix=f"imgfetch-bench-{name}-"))
    stack.callback(shutil.rmtree, path, True)
    return path
