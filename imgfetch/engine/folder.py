"""The output folder of a run or a Downloader, from its opening to its release.

An OUT that is an fsspec URL (s3://bucket/prefix, memory://, ...) is a Destination (store/remote.py): the run
works in a local work folder keyed by the URL, and a dataset's shards are uploaded as they are put in place
there (store/remoteshards.py); resume also reads the shards already on the destination.
"""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Callable

from ..errors import DiskFull, OptionError, OutputError
from ..options import Options
from ..records import FAILED, ErrorKind, FetchResult
from ..store.dedup import Dedup
from ..store.errorlist import ErrorsList
from ..store.files import FileLock, OutputDir, file_matches, is_empty_file
from ..store.journal import recover_unrecorded
from ..store.manifest import DoneIndex, ManifestWriter, compact, lock_manifest
from ..store.reading import MANIFEST_NAME
from ..store.remote import Destination, is_remote, work_folder
from ..store.remoteshards import RemoteShards
from ..store.shardset import ShardSet, open_shards

log = logging.getLogger(__name__)
COMPACT_RATIO = 2  # compact a manifest once it holds over this many lines per URL it records


class OutputFolder:
    """OUT, its manifest and its errors list, for one run or one Downloader.

    ``remember``: records written are added to ``done``, so that a URL asked for again later is
    found done (the Downloader); a run over one list has no need, and saves the memory.
    """

    def __init__(self, out_dir: str | os.PathLike[str], opts: Options, *, remember: bool = False) -> None:
        self.destination = _destination(out_dir, opts)  # None: OUT is a local folder
        self.remote: RemoteShards | None = None  # the shards on the destination
        self.out = OutputDir(work_folder(self.destination.url) if self.destination else out_dir)
        self.opts, self.remember = opts, remember
        self.disk_full = False  # the disk filled up: stop, and say so
        self.done: DoneIndex | None = None
        self.writer: ManifestWriter | None = None
        self.errors: ErrorsList | None = None
        self.dedup: Dedup | None = None  # --dedup: the images kept so far (store/dedup.py)
        self.shards: ShardSet | None = None  # a dataset's shards (--output-format): put in place as records are written
        self._manifest_lock: FileLock | None = None

    @property
    def root(self) -> Path:
        return self.out.root

    @property
    def manifest_path(self) -> Path:
        return Path(self.opts.manifest) if self.opts.manifest else self.out.root / MANIFEST_NAME

    def open(self, in_flight: Callable[[], int]) -> None:
        """Open the folder, the manifest and the errors list; a folder that cannot be opened is left as it was.

        ``in_flight``: how many downloads may be going on (the manifest keeps room for their records)."""
        errors = Path(self.opts.errors) if self.opts.errors else None
        new_folders = _missing_folders(self.out.root, self.manifest_path.parent, *([errors.parent] if errors else []))
        new_manifest = not self.manifest_path.exists()
        try:
            self.out.open()
            self._manifest_lock = lock_manifest(self.manifest_path)
            self.done = done = DoneIndex(self.manifest_path)
            assert self.out.tmp is not None
            recover_unrecorded(self.out.root, self.out.tmp, lambda key: (done.get(key) or {}).get("path"),
                               self.manifest_path)
            named = done.max_shard
            if self.destination is not None:
                self.remote = RemoteShards(self.destination, self.out.root, self.opts.output_format)
                self.remote.open()
                named = max(named, self.remote.highest)
            self.shards = open_shards(self.out.root, self.out.tmp, self.opts.output_format, self.opts.shard_size,
                                      named, self.manifest_path, self.opts.caption_column)
            if self.shards is not None and self.remote is not None:
                self.shards.on_placed = self.remote.placed
            if self.opts.dedup:
                self.dedup = Dedup(self.opts.dedup, self.out.root)
                log.debug("--dedup: %d images kept by earlier runs", self.dedup.load(self.manifest_path))
            self.writer = ManifestWriter(self.manifest_path, in_flight=in_flight)
            self.errors = ErrorsList(errors, self.manifest_path) if errors else None
            if self.remote is not None:
                self.remote.adopt(done.shards, self._adopt)
        except BaseException:
            for opened in (self.writer, self.done, self.dedup):  # whatever opened before the failure
                if opened is not None:
                    opened.close()
            self.release()
            if new_manifest and is_empty_file(self.manifest_path):
                self.manifest_path.unlink()
            for folder in new_folders:
                with contextlib.suppress(OSError):  # not empty, or not ours to remove
                    folder.rmdir()
            raise

    def _adopt(self, record: FetchResult) -> None:
        """A record read back from a shard on the destination: the manifest and the resume index take it."""
        assert self.writer is not None and self.done is not None
        self.writer.write(record)
        self.done.note(record.key, self.writer.offset)

    def shard_in_place(self, name: str, key: str | None) -> bool:
        """Whether the dataset shard a record (of URL key ``key``) names is complete and holds its row: on
        the destination, or in OUT."""
        return self.remote.in_place(name, key) if self.remote is not None else file_matches(self.root, name, None)

    def write(self, result: FetchResult, full_url: str | None, append: bool = True) -> bool:
        """Write one record (``append`` False: the manifest says it already); False when the disk is
        too full even for that. A full disk sets ``disk_full``."""
        assert self.writer is not None
        if self.dedup is not None:
            self.dedup.judge(result)  # a copy of an image kept earlier: its file goes, it becomes a duplicate
        try:
            self.writer.write(result, append=append)
            if self.errors is not None and result.status == FAILED and full_url:
                self.errors.add(full_url)
            if self.shards is not None:
                self.shards.recorded(result, self.writer.offset if append else -1)
                if result.shard is not None and not result.skipped and self.done is not None:
                    self.shards.supersedes(result, self.done.get(result.key))  # a failure fetched again: one row
        except DiskFull:
            self.disk_full = True
            return False
        if append and self.remember and self.done is not None and (result.status == FAILED or result.path):
            self.done.note(result.key, self.writer.offset)
        if (result.error_kind == ErrorKind.DISK_FULL or self.writer.low_space) and not self.disk_full:
            self.disk_full = True  # stop: downloads in flight finish into the manifest's reserve
            log.warning("the disk is full: stopping")
        return True

    def settle_shards(self) -> list[FetchResult]:
        """The workers have ended: the records that make every shard agree with the manifest (store/shardset.py),
        to be written like any other; none for files."""
        return self.shards.settle() if self.shards is not None and self.writer is not None else []

    def finish(self, complete: bool) -> None:
        """Put the errors list in place and close the manifest, compacting it after a complete run;
        then release everything. A full disk here is the run's full disk. The workers have ended by now,
        so their last shards go in place first."""
        try:
            if self.shards is not None:
                for record in self.settle_shards():  # when the driver has not written them (it does)
                    self.write(record, None)
                self.shards.finish()
            if self.errors is not None:
                self.errors.commit()
            if self.writer is not None:
                self.writer.close()
            if complete and self.done is not None and self.writer is not None:
                self.done.close()
                if self.done.lines + self.writer.written > COMPACT_RATIO * max(self.writer.records, len(self.done), 1):
                    _compact(self.manifest_path)
            if self.remote is not None:
                self.remote.finish()  # every upload ends here; one that failed is the run's error
        except DiskFull:
            self.disk_full = True
        finally:
            if self.errors is not None:
                self.errors.discard()
            if self.done is not None:
                self.done.close()
            if self.dedup is not None:
                self.dedup.close()
            self.release()

    def release(self) -> None:
        """Unlock the manifest and the output folder, and remove the temporary folder (safe to call twice)."""
        if self.remote is not None:
            self.remote.close()
        if self._manifest_lock is not None:
            self._manifest_lock.release()
        self.out.close()


def _compact(path: Path) -> None:
    """Keep the manifest one record per URL; a failure here costs nothing but disk space."""
    try:
        before, after = compact(path)
    except (OSError, OutputError) as exc:
        log.warning("could not compact %s (it stays as it is): %s", path, getattr(exc, "strerror", None) or exc)
        return
    log.info("compacted %s: %d records -> %d (the newest per URL)", path, before, after)


def _destination(out_dir: str | os.PathLike[str], opts: Options) -> Destination | None:
    """The Destination an fsspec URL names, or None for a local folder; what it cannot hold is refused here."""
    if not is_remote(out_dir):
        if opts.storage_options:
            raise OptionError("storage_options apply to an OUT that is a URL (s3://BUCKET/PREFIX, ...), "
                              f"not to the folder {out_dir}", "storage_options")
        return None
    assert isinstance(out_dir, str)
    if opts.output_format == "files":
        raise OutputError(f"-o {out_dir}: object storage takes --output-format webdataset or parquet; "
                          "for one file per image, give a local folder")
    return Destination.from_spec(out_dir, opts.storage_options)


def refuse_overwriting_the_list(urls: Any, manifest: Path, errors: Path | None) -> None:
    """An output that is the URL list (or the manifest) would destroy it: refuse with one line."""
    source = Path(urls) if isinstance(urls, (str, os.PathLike)) and str(urls) != "-" else None
    if errors is not None and _same_file(errors, manifest):
        raise OutputError(f"--errors {errors} is the manifest; name another file")
    if source is None or not source.is_file():
        return
    if _same_file(manifest, source):
        raise OutputError(f"--manifest {manifest} is the URL list being read: records would be appended to it; "
                          f"name another file (the default is OUT/{MANIFEST_NAME})")
    if errors is not None and _same_file(errors, source):
        raise OutputError(f"--errors {errors} is the URL list being read: it would be replaced by this run's failures "
                          f"alone; name another file, such as {errors.with_name(errors.stem + '-failed' + errors.suffix)}")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one is missing: the same file only by name
        return os.path.abspath(a) == os.path.abspath(b)


def _missing_folders(*folders: Path) -> list[Path]:
    """The folders (and their missing parents) that do not exist yet, deepest first."""
    missing: list[Path] = []
    for folder in folders:
        for candidate in (folder, *folder.parents):
            if candidate.exists() or candidate in missing:
                break
            missing.append(candidate)
    return sorted(missing, key=lambda p: len(p.parts), reverse=True)
