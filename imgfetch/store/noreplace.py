"""Putting a finished temporary file at a name that must still be free, on any local filesystem.

``os.link`` (atomic, and it fails if anything at all, even a dangling symlink, has the name), else
``renameat2(RENAME_NOREPLACE)``, else an ``O_EXCL`` placeholder replaced by a rename (the README says where).
Each process remembers the first way that worked: a process writes one output folder, and every fallback
keeps the same promises, so a wrong guess for another folder costs nothing but a little speed.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import sys
from collections.abc import Callable
from typing import Any

LINK, RENAME, PLACEHOLDER = "link", "renameat2", "placeholder"
FILE_MODE = 0o666  # less the umask: the placeholder's mode, which the rename then replaces
AT_FDCWD = -100        # <fcntl.h>: paths relative to the working directory (ours are absolute)
RENAME_NOREPLACE = 1   # <linux/fs.h>: fail with EEXIST rather than replace the target
# link() errors that mean "no hard links on this filesystem" (vfat: EPERM; some FUSE: ENOSYS,
# EOPNOTSUPP; a link count capped at 1: EMLINK; FUSE unions across branches: EXDEV).
NO_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK, errno.EXDEV})
# renameat2() errors that mean "not here": no such system call, or the filesystem lacks the flag.
NO_RENAME_FLAG = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP})

Rename = Callable[[str, str], None]


@functools.lru_cache(maxsize=1)
def libc() -> Any:
    """The C library, for the calls Python does not wrap; None off Linux, or where it cannot be loaded."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _libc_renameat2() -> Rename | None:
    """renameat2(RENAME_NOREPLACE) from the C library (glibc >= 2.28), or None without it."""
    function = getattr(libc(), "renameat2", None)
    if function is None:
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    function.restype = ctypes.c_int

    def rename_noreplace(src: str, dst: str) -> None:
        if function(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst), RENAME_NOREPLACE) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), dst)  # EEXIST becomes FileExistsError
    return rename_noreplace


_rename_noreplace: Rename | None = _libc_renameat2()
_way = LINK  # this process's way in, moved on once a way is found not to work here


def way() -> str:
    """The way this process puts files in place now: LINK, RENAME or PLACEHOLDER."""
    return _way


def place_new(tmp_name: str, target: str) -> None:
    """Put ``tmp_name`` at ``target`` only if nothing has that name; FileExistsError if something does.

    Never replaces anything and never follows a symlink at ``target``. After a link,
    ``tmp_name`` still exists (the caller removes it); after a rename it is gone.
    """
    global _way
    if _way == LINK:
        try:
            os.link(tmp_name, target)
            return
        except OSError as exc:
            if exc.errno not in NO_LINKS:
                raise
            _way = RENAME if _rename_noreplace is not None else PLACEHOLDER
    if _way == RENAME and _rename_noreplace is not None:
        try:
            _rename_noreplace(tmp_name, target)
            return
        except OSError as exc:
            if exc.errno not in NO_RENAME_FLAG:
                raise
            _way = PLACEHOLDER
    _through_placeholder(tmp_name, target)


def _through_placeholder(tmp_name: str, target: str) -> None:
    """Claim ``target`` with an empty file (O_EXCL: fails if anything, even a symlink, is there),
    then rename the finished file over it.

    The empty placeholder is visible under the final name for the instant between the two
    calls. A crash there leaves it behind, empty: files.write_atomic takes an empty file at a
    target over on the next run (imgfetch never saves an empty image), so it blocks nothing.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    os.close(os.open(target, flags, FILE_MODE))
    try:
        os.replace(tmp_name, target)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(target)  # our own placeholder: leave the name as free as we found it
        raise
