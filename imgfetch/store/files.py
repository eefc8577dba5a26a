"""Safe names, atomic writes and the output folder's lock."""
from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import shutil
import stat
import tempfile
import unicodedata
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import OutputError
from ..options.values import COLUMN_NAMING
from .noreplace import place_new

LOCK_NAME = ".imgfetch.lock"
TMP_PREFIX = ".imgfetch-tmp-"
MAX_STEM = 80  # characters of a name taken from a URL or a column, before the key is added
URL_KEY_CHARS = 10  # of the URL key added to a name from the URL: different URLs, different files
COLUMN_KEY_CHARS = 8  # of the URL key added to a name from a column
FILE_MODE = 0o666  # less the umask, as curl's and wget's files are
LOCK_MODE = 0o644  # a lock file: the owner writes, anyone may read
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_TMP_SEQUENCE = itertools.count()
# Names Windows keeps for devices, whatever the extension.
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}


def ignore_file_size_signal() -> None:
    """Past RLIMIT_FSIZE a write should fail with EFBIG (one failed URL), not kill the process."""
    import signal

    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def safe_stem(text: str, fallback: str = "image") -> str:
    """A file-name stem safe on Linux, macOS and Windows: ASCII letters, digits, '.', '_', '-'."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    stem = _UNSAFE.sub("_", text).strip("._-")
    stem = re.sub(r"\.{2,}", ".", stem)[:MAX_STEM].rstrip("._-")
    if not stem or stem.split(".")[0].upper() in _RESERVED:
        stem = f"{fallback}_{stem}" if stem else fallback
    return stem


def target_name(naming: str, *, url: str, key: str, line: int, sha256: str, extension: str,
                columns: dict[str, str], subdirs: int | None) -> str:
    """The path of a file relative to the output folder, always inside it ('/' separators)."""
    if naming == "hash":
        name = sha256
    elif naming == "index":
        name = f"{line:09d}"
    elif naming.startswith(COLUMN_NAMING):
        column = naming[len(COLUMN_NAMING):]
        name = f"{safe_stem(columns.get(column, ''), 'row')}-{key[:COLUMN_KEY_CHARS]}"
    else:
        base = unquote(urlsplit(url).path.rsplit("/", 1)[-1], errors="replace")
        base = base.rsplit(".", 1)[0] if "." in base else base
        name = f"{safe_stem(base)}-{key[:URL_KEY_CHARS]}"
    if subdirs:
        return f"{(max(line, 1) - 1) // subdirs:06d}/{name}{extension}"
    return f"{name}{extension}"


class FileLock:
    """An exclusive ``flock`` on ``path`` (created if missing), for one run at a time on a folder or a manifest;
    released and the file removed by ``release``. ``busy`` is the one line a second run reads."""

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

    def release(self) -> None:
        """Remove the file, then unlock (safe to call twice)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None


class OutputDir:
    """The output folder: created and checked up front, locked for one run at a time."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._lock = FileLock(self.root / LOCK_NAME, f"{self.root}: another imgfetch run is using this folder")
        self.tmp: Path | None = None

    def open(self) -> "OutputDir":
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if not self.root.is_dir():
                raise OutputError(f"{self.root}: not a folder")
            self._lock.acquire()
            self.tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=self.root))
        except OutputError:
            self.close()
            raise
        except OSError as exc:
            self.close()
            raise OutputError(f"cannot use output folder {self.root}: {exc.strerror or exc}") from None
        return self

    def close(self) -> None:
        """Remove the temporary folder and release the lock (safe to call twice)."""
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        self._lock.release()

    def __enter__(self) -> "OutputDir":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_atomic(root: Path, tmp_dir: Path, relpath: str, data: bytes, *, replace: bool) -> None:
    """Write data to root/relpath via a temporary file and a link or rename; never a partial file.

    Without ``replace`` an existing file (or symlink) at the target is never touched, unless it already holds
    exactly these bytes or is empty (what a crash in noreplace's placeholder leaves); else OSError.
    """
    target = os.path.join(root, relpath)
    if "/" in relpath:
        _make_parent(Path(target).parent)
    # A name unique to this process and call: cheaper than mkstemp's random retries.
    tmp_name = os.path.join(tmp_dir, f"{os.getpid()}-{next(_TMP_SEQUENCE)}.part")
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        _write_and_close(fd, data)
        if replace and not os.path.islink(target):
            os.replace(tmp_name, target)
        else:
            _link_new(tmp_name, target, data)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)


def _write_and_close(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _link_new(tmp_name: str, target: str, data: bytes) -> None:
    """Put the file in at ``target`` unless something is there; fine if it holds the same bytes."""
    try:
        place_new(tmp_name, target)  # fails if anything (even a dangling symlink) is there
    except FileExistsError:
        if os.path.islink(target):
            raise FileExistsError(errno.EEXIST, "a symlink is already there (never followed)") from None
        if is_empty_file(target):
            os.replace(tmp_name, target)  # a placeholder a crash left (see noreplace): nothing to lose
        elif not _same_bytes(Path(target), data):
            raise FileExistsError(errno.EEXIST, "a different file is already there (use --overwrite)") from None


def is_empty_file(path: str | os.PathLike[str]) -> bool:
    """An empty regular file (not a symlink) is at ``path``."""
    return file_matches(Path(path), "", 0)


def _make_parent(parent: Path) -> None:
    parent.mkdir(exist_ok=True)  # our names are at most one folder deep
    if parent.is_symlink():
        raise OSError(errno.ELOOP, "subfolder is a symlink; refusing to follow it")


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def file_matches(root: Path, relpath: str, size: int | None) -> bool:
    """True when root/relpath is a regular file (not a symlink) of the recorded size."""
    try:
        st = os.lstat(root / relpath)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and (size is None or st.st_size == size)
