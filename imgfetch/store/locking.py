"""An exclusive lock held through a lock file, for one run at a time on a folder or a manifest."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import OutputError

LOCK_MODE = 0o644  # a lock file: the owner writes, anyone may read


class FileLock:
    """``flock`` on ``path`` (created if missing); released and the file removed by ``release``.

    ``busy`` is the one line a second run reads when another holds the lock.
    """

    def __init__(self, path: Path, busy: str) -> None:
        self.path, self.busy = path, busy
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, LOCK_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise OutputError(self.busy) from None
            # The holder before us may have unlinked the file after we opened it: lock the live one.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove the file, then unlock (safe to call twice)."""
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None
