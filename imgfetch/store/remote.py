"""Outputs on object storage: -o s3://bucket/prefix (or any fsspec URL: gs://, memory://, file://).

A :class:`Destination` is the -o value when it is an fsspec URL; a local path never becomes one, so it
keeps the local output folder's behaviour exactly. A Destination holds only its URL and storage
options: it pickles as those, and opens its filesystem lazily, so a worker process or a Dask worker
rebuilds it where it runs. Credentials and endpoints: the filesystem's usual environment, then the
storage options, which win.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from pathlib import Path
from typing import IO, Any, Iterable, Mapping

from ..errors import ImgFetchError, OutputError

log = logging.getLogger(__name__)
S3_EXTRA = "pip install 'imgfetch[s3]'"
PUBLISH_ATTEMPTS = 4  # an upload that fails this many times is a run-level error
PUBLISH_BACKOFF_S = 0.5  # the first retry waits this long, doubling
PARTIAL = ".partial"  # file:// only: a copy on its way, renamed to its final name once whole
CACHE_ENV = "IMGFETCH_CACHE"  # where the local state of remote outputs lives (default: ~/.cache/imgfetch)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")


def is_remote(out: object) -> bool:
    """Whether the -o value is an fsspec URL (scheme://...), not a local path."""
    return isinstance(out, str) and _SCHEME.match(out) is not None


def nested(pairs: Iterable[tuple[str, Any]] | Mapping[str, Any]) -> dict[str, Any]:
    """Storage options as fsspec takes them: dotted keys become nested mappings."""
    options: dict[str, Any] = {}
    for key, value in pairs.items() if isinstance(pairs, Mapping) else pairs:
        *parents, last = key.split(".")
        level = options
        for part in parents:
            level = level.setdefault(part, {})
            if not isinstance(level, dict):
                raise ValueError(f"storage option {key}: {part} is already a value")
        level[last] = value
    return options


def work_folder(url: str) -> Path:
    """The local folder that holds a remote destination's lock, manifest, journal and staged shards:
    $IMGFETCH_CACHE (or $XDG_CACHE_HOME/imgfetch, or ~/.cache/imgfetch)/remote/<hash of the URL>."""
    base = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "imgfetch")
    return Path(base) / "remote" / hashlib.sha256(url.rstrip("/").encode("utf-8")).hexdigest()[:20]


class Destination:
    """An fsspec URL to publish finished files to. See the module docstring."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self._fs: Any = None
        self._root = ""

    @classmethod
    def from_spec(cls, url: str, storage_options: Iterable[tuple[str, Any]] | Mapping[str, Any] = ()) -> "Destination":
        """``storage_options``: a mapping, or ``(key, value)`` pairs whose dotted keys nest."""
        return cls(url, nested(storage_options))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Destination, (self.url, self.storage_options))  # the filesystem is opened again where it lands

    def __repr__(self) -> str:
        return f"Destination({self.url!r})"

    @property
    def fs(self) -> Any:
        if self._fs is None:
            self._fs, self._root = open_filesystem(self.url, self.storage_options)
        return self._fs

    def path(self, name: str) -> str:
        """The filesystem path of ``name`` (relative to the destination)."""
        self.fs  # noqa: B018 - sets _root
        return f"{self._root}/{name}" if self._root else name

    def check(self) -> None:
        """Raise OutputError (one line) unless the destination can be listed: bucket, credentials, endpoint."""
        try:
            self.fs.invalidate_cache()
            if self._bucketed():
                self.fs.info(self._root.split("/", 1)[0])  # the bucket: missing, or not ours to read
            self.list()
        except ImgFetchError:
            raise
        except Exception as exc:  # noqa: BLE001 - every backend raises its own: one line, whatever it is
            raise OutputError(f"{self.url}: cannot be used: {short(exc)}") from None

    def list(self, prefix: str = "") -> list[str]:
        """Names (relative to the destination) of the objects directly under it that start with ``prefix``;
        [] when the destination holds nothing yet."""
        try:
            found = self.fs.ls(self.path("").rstrip("/") or self._root, detail=False, refresh=True)
        except FileNotFoundError:
            return []  # nothing published yet
        names = [str(item).rstrip("/").rsplit("/", 1)[-1] for item in found]
        return sorted(name for name in names if name.startswith(prefix))

    def _bucketed(self) -> bool:
        return getattr(self.fs, "protocol", None) not in ("memory", "file", ("file", "local"))

    def exists(self, name: str) -> bool:
        return bool(self.fs.exists(self.path(name)))

    def open(self, name: str, mode: str = "rb") -> IO[Any]:
        return self.fs.open(self.path(name), mode)

    def remove(self, name: str) -> None:
        self.fs.rm_file(self.path(name))

    def publish(self, local_path: str | os.PathLike[str], name: str) -> None:
        """Upload ``local_path`` as ``name``, trying up to PUBLISH_ATTEMPTS times, waiting PUBLISH_BACKOFF_S doubling
        in between; OutputError (one line) after the last. An object PUT is atomic: a reader never meets a partial
        object (on ``file://`` the copy is renamed into place)."""
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            try:
                self._put(str(local_path), self.path(name))
                return
            except Exception as exc:  # noqa: BLE001 - network, credentials, throttling: all retried alike
                if attempt == PUBLISH_ATTEMPTS:
                    raise OutputError(f"cannot upload {name} to {self.url} after {attempt} attempts: "
                                      f"{short(exc)}") from None
                log.info("uploading %s to %s failed (%s); retrying", name, self.url, short(exc))
                time.sleep(PUBLISH_BACKOFF_S * 2 ** (attempt - 1))

    def _put(self, local: str, target: str) -> None:
        if getattr(self.fs, "protocol", None) in ("file", ("file", "local")):
            partial = target + PARTIAL  # a copy is not atomic on a filesystem: rename it into place
            self.fs.makedirs(os.path.dirname(target), exist_ok=True)
            self.fs.put_file(local, partial)
            self.fs.mv(partial, target)
        else:
            self.fs.put_file(local, target)


def open_filesystem(url: str, storage_options: Mapping[str, Any]) -> tuple[Any, str]:
    """(fsspec filesystem, root path) for the URL; a missing package is one line naming the extra."""
    try:
        from fsspec.core import url_to_fs
    except ImportError:
        raise ImgFetchError(f"-o {url} needs fsspec: {S3_EXTRA}") from None
    try:
        fs, root = url_to_fs(url, **storage_options)
    except ImportError as exc:  # fsspec knows the protocol; its package (s3fs, gcsfs, ...) is missing
        if url.startswith(("s3://", "s3a://")):
            raise ImgFetchError(f"-o {url} needs s3fs: {S3_EXTRA}") from None
        raise ImgFetchError(f"-o {url}: {short(exc)}") from None  # fsspec's message names the package
    except (ValueError, TypeError) as exc:
        raise OutputError(f"-o {url}: {short(exc)}") from None
    return fs, str(root).rstrip("/")


def short(exc: BaseException) -> str:
    """One line for an exception from a storage backend."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
