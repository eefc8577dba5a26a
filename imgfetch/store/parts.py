"""The manifest in parts: one JSON Lines file per shard of a sharded run (--executor dask), and beside it the
shard's stats, written last, the mark of a complete shard (the README's "Running on a Dask cluster").
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from .remote import Destination
from .shardfiles import read_stats

PARTS_DIR = "manifest.parts"
_PART = re.compile(r"^(\d{5,})\.jsonl$")
_DONE = re.compile(r"^(\d{5,})_stats\.json$")


def part_name(number: int) -> str:
    """The part's name relative to the output folder."""
    return f"{PARTS_DIR}/{number:05d}.jsonl"


def done_name(number: int) -> str:
    """The shard's small stats, relative to the output folder: its presence says the shard is complete."""
    return f"{PARTS_DIR}/{number:05d}_stats.json"


def shard_done(root: str | os.PathLike[str] | Destination, number: int) -> dict[str, Any] | None:
    """The stats of shard ``number`` if it is complete in ``root`` (a folder, or object storage), else None."""
    if not isinstance(root, Destination):
        return read_stats(os.path.join(root, done_name(number)))
    try:
        with root.open(done_name(number), "rb") as handle:
            data = json.loads(handle.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def parts_on(destination: Destination) -> Destination:
    """The manifest parts' folder on object storage, as a Destination of its own (to list it)."""
    return Destination(f"{destination.url}/{PARTS_DIR}", destination.storage_options)


def done_numbers(destination: Destination) -> set[int]:
    """The shards complete on object storage (their stats are in the parts' folder), listed at once."""
    return {int(name.split("_", 1)[0]) for name in parts_on(destination).list() if _DONE.match(name)}


def survey(destination: Destination) -> dict[int, dict[str, Any]]:
    """Check the destination (OutputError, one line, if it cannot be used) and return the stats of each shard
    complete on it. On Dask this runs as a task, so that the client never opens the filesystem."""
    destination.check()
    found = {number: shard_done(destination, number) for number in sorted(done_numbers(destination))}
    return {number: stats for number, stats in found.items() if stats is not None}


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Write a small JSON file whole or not at all (a temporary name, then a rename)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(data) + "\n", encoding="utf-8")
    os.replace(partial, path)


def part_files(root: Path) -> list[Path]:
    """The manifest parts in ``root``, in shard order."""
    folder = root / PARTS_DIR
    if not folder.is_dir():
        return []
    return sorted((folder / name for name in os.listdir(folder) if _PART.match(name)), key=lambda p: p.name)
