"""What ``imgfetch bench`` compares: its settings, its rows (the classic example's, then imgfetch's
engine over a sweep of sizes with get's defaults among them) and the report of their runs.

``measure`` runs them; ``advice`` reads them; ``table``, ``jsondoc`` and ``chart`` show them.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..options import Options
from ..report.summary import counted
from ..urls import host_of
from .classic import RunStats
from .settings import BenchSettings

SEQUENTIAL, CLASSIC, ENGINE = "sequential", "classic", "engine"
MIN_RUNS = 2              # every row runs this often; more (up to --repeat) only while its runs disagree
UNLISTED_METHOD = 99      # sorts get's default start method after the ones asked for when it is not among them


def get_defaults() -> tuple[int, int, str]:
    """(workers, threads, start method) that ``imgfetch get`` uses when given none."""
    defaults = Options()
    return defaults.workers, defaults.threads, defaults.start_method


def runs_per_row(repeat: int) -> str:
    """'1 run', '2 runs' or '2-5 runs': how often each row ran (rows stop at 2 once their runs agree)."""
    if repeat <= MIN_RUNS:
        return counted(repeat, "run")
    return f"{MIN_RUNS}-{repeat} runs"


@dataclass
class Row:
    """One row of the table: a way of downloading, and its time-boxed runs."""

    kind: str
    workers: int = 1
    threads: int = 1
    start_method: str | None = None
    chunksize: int | None = None
    is_default: bool = False  # get's defaults
    cap: int | None = None    # downloads --per-host lets be in flight: per_host x the list's hosts; None: no cap
    runs: list[RunStats] = field(default_factory=list)

    @property
    def slots(self) -> int:
        """Download slots: workers x threads."""
        return self.workers * self.threads

    @property
    def concurrency(self) -> int:
        """Downloads in flight at once: the slots, or fewer when --per-host caps them."""
        return min(self.slots, self.cap) if self.cap else self.slots

    @property
    def capped(self) -> bool:
        return self.concurrency < self.slots

    @property
    def rates(self) -> list[float]:
        return [run.images_per_s for run in self.runs]

    @property
    def median(self) -> float:
        return statistics.median(self.rates) if self.runs else 0.0

    @property
    def low(self) -> float:
        return min(self.rates, default=0.0)

    @property
    def high(self) -> float:
        return max(self.rates, default=0.0)

    @property
    def images(self) -> int:
        return int(statistics.median(run.images for run in self.runs)) if self.runs else 0

    @property
    def failures(self) -> int:
        return sum(run.failures for run in self.runs)

    @property
    def first_s(self) -> float | None:
        firsts = [run.first_s for run in self.runs if run.first_s is not None]
        return statistics.median(firsts) if firsts else None

    @property
    def pid_counts(self) -> dict[int, int]:
        """URLs handled per process in the last run."""
        return self.runs[-1].pid_counts if self.runs else {}

    @property
    def label(self) -> str:
        if self.kind == SEQUENTIAL:
            return "sequential requests.get loop"
        if self.kind == CLASSIC:
            chunks = f", chunksize={self.chunksize}" if self.chunksize != 1 else ""
            return f"ProcessPoolExecutor({self.workers}).map{chunks}"
        return f"imgfetch ({self.start_method})"

    @property
    def short(self) -> str:
        """How the advice names it: '4 x 128' for the engine."""
        return f"{self.workers} x {self.threads}" if self.kind == ENGINE else self.label

    @property
    def flags(self) -> str:
        return f"--workers {self.workers} --threads {self.threads}"


@dataclass
class BenchReport:
    """Every row with its runs, and what the header, the JSON and the chart say about the run."""

    settings: BenchSettings
    rows: list[Row]
    url_count: int
    source: str                    # where the URLs came from, for the header and the chart's title
    date: str = ""
    hosts: int = 1                 # distinct hosts in the list (--per-host holds per host)
    wall_s: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)  # the engine's options that matter here
    bursts: Any = None             # bursts.BurstNote: a warm Downloader against a fresh download(), if measured

    @property
    def sequential(self) -> Row:
        return next(row for row in self.rows if row.kind == SEQUENTIAL)

    @property
    def classic(self) -> list[Row]:
        return [row for row in self.rows if row.kind == CLASSIC]

    @property
    def engine(self) -> list[Row]:
        return [row for row in self.rows if row.kind == ENGINE]

    @property
    def failures(self) -> int:
        return sum(row.failures for row in self.rows)

    def speedup(self, row: Row) -> float:
        base = self.sequential.median
        return row.median / base if base else 0.0


def count_hosts(urls: Iterable[str]) -> int:
    """Distinct (host, port) pairs, as --per-host counts them."""
    return len({host_of(url) for url in urls})


def plan_rows(settings: BenchSettings, opts: Options, hosts: int = 1) -> list[Row]:
    """The sequential loop, the classic pool(s), then the engine sweep with get's defaults in it.

    With --per-host, no row can have more than per_host x ``hosts`` downloads in flight: that is its ``cap``.
    """
    methods = settings.start_methods or (opts.start_method,)
    classic = sorted({min(n, opts.per_host or n) for n in settings.classic_workers})
    cap = opts.per_host * hosts if opts.per_host else None
    rows = [Row(SEQUENTIAL, cap=cap)]
    rows += [Row(CLASSIC, n, 1, methods[0], settings.chunksize, cap=cap) for n in classic]
    configs = {(m, t, w) for m in methods for t in settings.threads for w in settings.workers}
    workers, threads, method = get_defaults()
    configs.add((method, threads, workers))  # always a row: the advice compares with it
    for m, t, w in sorted(configs, key=lambda c: (methods.index(c[0]) if c[0] in methods else UNLISTED_METHOD,
                                                   c[1], c[2])):
        rows.append(Row(ENGINE, w, t, m, is_default=(m, t, w) == (method, threads, workers), cap=cap))
    return rows
