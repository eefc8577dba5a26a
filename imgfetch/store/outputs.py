"""Output paths checked before a run: none may be the URL list; what a run that cannot start created is removed."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import OutputError
from .reading import MANIFEST_NAME


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


def missing_folders(*folders: Path) -> list[Path]:
    """The folders (and their missing parents) that do not exist yet, deepest first."""
    missing: list[Path] = []
    for folder in folders:
        for candidate in (folder, *folder.parents):
            if candidate.exists() or candidate in missing:
                break
            missing.append(candidate)
    return sorted(missing, key=lambda p: len(p.parts), reverse=True)


def is_empty_file(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size == 0
    except OSError:
        return False


def remove_if_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty, or not ours to remove
