"""What the client of a sharded run on Dask hands out (dask_shards.py): a ShardJob, and the task that runs it.

Kept apart from shard_task.py, which runs a shard in a Dask worker process, so that the client imports nothing
of the download path (requests, Pillow, the pipeline): ``run_shard`` imports it where the task runs.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..options import Options
from ..sources import Entry
from ..store.remote import Destination
from .markers import may_start, scheduler_flag

SHARDS_PER_PROCESS = 2  # shards a Dask worker process runs at once, on one pool of --threads threads


@dataclasses.dataclass(frozen=True)
class ShardJob:
    """Everything a shard task needs, all plain and picklable."""

    opts: Options
    out: str                      # the output folder, as every Dask worker reaches it
    tmp: str                      # the run's temporary folder in it: the stop markers, files' temporary names
    number: int
    entries: tuple[Entry, ...]
    destination: Destination | None = None  # OUT on object storage (pickles as its URL and options): the shard
    # is published there, and ``tmp`` only names the run (its stop state is in the scheduler)

    def may_start(self) -> bool:
        """Whether the run lets a new download start."""
        return scheduler_flag(self.tmp).may_start() if self.destination is not None else may_start(self.tmp)


def run_shard(job: ShardJob) -> dict[str, Any]:
    """The Dask task of one shard: shard_task.run_shard, imported in the Dask worker process that runs it."""
    from .shard_task import run_shard as run

    return run(job)


def progress_topic(tmp: str) -> str:
    """The Dask event topic on which a run's shards say how far they are (the run's temporary folder is unique)."""
    return f"imgfetch-progress-{Path(tmp).name}"
