"""Images saved but not yet recorded: a note per image, written just before it is put in place.

A worker notes (URL key, sha256, size, path) in a file of its own in the run's temporary folder;
a run killed hard leaves the notes, and the next run into the folder, holding its lock, removes every
noted image that no record owns and that still holds the noted bytes (the README's "A hard kill costs
one re-run, never a URL").
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import shutil
import socket
import threading
from pathlib import Path
from typing import Callable, Iterator

from .files import TMP_PREFIX, file_matches
from .reading import manifest_lines

log = logging.getLogger(__name__)
NOTES_PREFIX = "saved-"  # a notes file in a run's temporary folder, one per process
NOTE_MODE = 0o600
TMP_GLOB = TMP_PREFIX + "*"  # the temporary folders of runs and of fetch()


class SaveNotes:
    """One process's notes file in one run's temporary folder, opened on the first note and kept
    open (some FUSE drives refuse to open an existing file for writing again)."""

    def __init__(self, tmp: Path) -> None:
        self.path = tmp / f"{NOTES_PREFIX}{socket.gethostname()}-{os.getpid()}"
        self._fd: int | None = None
        self._failed = False
        self._lock = threading.Lock()

    def note(self, key: str, sha256: str, size: int, relpath: str) -> None:
        """Note that an image is about to be put in place: one write of one line, so notes of
        several threads never interleave (O_APPEND). A failure costs only the recovery after a kill."""
        if self._fd is None:
            with self._lock:
                if self._fd is None and not self._failed:
                    try:
                        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, NOTE_MODE)
                    except OSError as exc:
                        self._failed = True
                        log.warning("cannot note saved images in %s (%s): after a hard kill, an image saved "
                                    "without its record may need --overwrite", self.path, exc.strerror or exc)
            if self._fd is None:
                return
        try:
            os.write(self._fd, f"{key}\t{sha256}\t{size}\t{relpath}\n".encode())
        except OSError as exc:  # a full disk: the save itself will say so
            log.debug("cannot note %s in %s: %s", relpath, self.path, exc)

    def __del__(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):  # the drive is gone already
                os.close(self._fd)


@functools.lru_cache(maxsize=8)
def _notes(tmp: str, pid: int) -> SaveNotes:
    return SaveNotes(Path(tmp))


def save_notes(tmp: Path) -> SaveNotes:
    """This process's notes for the run whose temporary folder is ``tmp`` (a pool worker or a Dask
    worker process; an in-process fetch() keeps no notes, having no manifest to recover)."""
    return _notes(str(tmp), os.getpid())


def recover_unrecorded(root: Path, current_tmp: Path | None, recorded: Callable[[str], str | None],
                       manifest: Path) -> int:
    """Remove the images killed runs saved without a record, and those runs' temporary folders.

    ``recorded(key)``: the path of the key's newest ok record, or None. Returns how many images
    were removed. Call only while holding the output folder's lock.
    """
    # By name: from Python 3.12 on, mkdtemp gives an absolute path even in a relative root, which glob does not
    keep = current_tmp.name if current_tmp is not None else None
    stale = [folder for folder in root.glob(TMP_GLOB)
             if folder.name != keep and folder.is_dir() and not folder.is_symlink()]
    if not stale:
        return 0
    orphans = {relpath: (sha, size) for key, sha, size, relpath in _read_notes(stale) if recorded(key) != relpath}
    if orphans:
        for _offset, _number, record in manifest_lines(manifest) if manifest.exists() else ():
            orphans.pop(record.get("path"), None)  # another URL's record owns it (naming=hash)
            if not orphans:
                break
    removed = sum(_remove_if_unchanged(root, relpath, sha, size) for relpath, (sha, size) in orphans.items())
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    if removed:
        log.info("removed %d image%s that an interrupted run saved without recording; they are fetched again",
                 removed, "" if removed == 1 else "s")
    return removed


def _read_notes(folders: list[Path]) -> Iterator[tuple[str, str, int, str]]:
    for folder in folders:
        for path in folder.glob(NOTES_PREFIX + "*"):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                parts = line.split("\t")
                if len(parts) == 4 and parts[2].isdigit() and _inside(parts[3]):
                    yield parts[0], parts[1], int(parts[2]), parts[3]


def _inside(relpath: str) -> bool:
    """A path our naming could have made: relative, '/'-separated, never climbing out."""
    return bool(relpath) and not os.path.isabs(relpath) and ".." not in relpath.split("/")


def _remove_if_unchanged(root: Path, relpath: str, sha256: str, size: int) -> bool:
    path = root / relpath
    try:
        if not file_matches(root, relpath, size) or hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
            return False
        path.unlink()
    except OSError:
        return False
    return True
