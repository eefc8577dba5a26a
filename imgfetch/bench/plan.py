"""What ``imgfetch bench`` compares: its settings, its rows (the classic example's, then imgfetch's
engine over a sweep of sizes with get's defaults among them) and the report of their runs.

``benchrun`` measures them; ``advice`` reads them; ``bench`` prints them.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from .classic import RunStats
from ..options import Options, usable_cpus

SEQUENTIAL, CLASSIC, ENGINE = "sequential", "classic", "engine"
DEFAULT_THREADS = (1, 16, 128, 256)  # from one thread per worker to past get's default of 128


@dataclass(frozen=True)
class BenchSettings:
    """What to benchmark; validated like Options (ValueError naming the option)."""

    urls: str | None = None          # a list file; None = the built-in server
    count: int = 1500
    latency_ms: float = 60.0
    latency_spread: float = 1.0
    limit: int | None = None
    workers: tuple[int, ...] = ()    # () = 1, 2, 4, ... up to 2 x usable CPUs (at most 32)
    threads: tuple[int, ...] = DEFAULT_THREADS
    start_methods: tuple[str, ...] = ()
    classic_workers: tuple[int, ...] = (3,)
    chunksize: int = 1
    repeat: int = 3
    seconds: float = 1.0
    ramp: float = 0.3
    keep: str | None = None

    def __post_init__(self) -> None:
        for name in ("count", "repeat", "chunksize"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {self.limit}")
        if not 0 <= self.latency_ms <= 60_000:
            raise ValueError(f"--latency-ms must be between 0 and 60000, got {self.latency_ms:g}")
        if not 0 <= self.latency_spread <= 5:
            raise ValueError(f"--latency-spread must be between 0 and 5, got {self.latency_spread:g}")
        if not 0.05 <= self.seconds <= 3600:
            raise ValueError(f"--seconds must be between 0.05 and 3600, got {self.seconds:g}")
        if not 0 <= self.ramp <= 60:
            raise ValueError(f"--ramp must be between 0 and 60, got {self.ramp:g}")
        if not self.workers:
            object.__setattr__(self, "workers", default_worker_sweep())
        for name in ("workers", "threads", "classic_workers"):
            sizes = getattr(self, name)
            if not sizes or any(n < 1 for n in sizes):
                raise ValueError(f"--{name.replace('_', '-')} sizes must be whole numbers >= 1")
            object.__setattr__(self, name, tuple(sorted(set(sizes))))


def default_worker_sweep(cpus: int | None = None) -> tuple[int, ...]:
    """1, 2, 4, ... up to 2 x the CPUs (get's default), that value included; at most 32."""
    top = min(32, 2 * (cpus or usable_cpus()))
    sizes, n = [], 1
    while n < top:
        sizes.append(n)
        n *= 2
    return tuple(sizes + [top])


def get_defaults() -> tuple[int, int, str]:
    """(workers, threads, start method) that ``imgfetch get`` uses when given none."""
    defaults = Options()
    return defaults.workers, defaults.threads, defaults.start_method


def parse_sizes(option: str, text: str) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4); a clear ValueError naming the option otherwise."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"{option} takes comma-separated whole numbers like 1,2,4, got {text!r}") from None
    if any(n < 1 for n in sizes):
        raise ValueError(f"{option} sizes must be >= 1, got {text!r}")
    return sizes


@dataclass
class Row:
    """One row of the table: a way of downloading, and its time-boxed runs."""

    kind: str
    workers: int = 1
    threads: int = 1
    start_method: str | None = None
    chunksize: int | None = None
    is_default: bool = False  # get's defaults
    runs: list[RunStats] = field(default_factory=list)

    @property
    def concurrency(self) -> int:
        return self.workers * self.threads

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
    settings: BenchSettings
    rows: list[Row]
    url_count: int
    source: str                    # where the URLs came from, for the header and the chart's title
    date: str = ""
    wall_s: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)  # the engine's options that matter here

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


def plan_rows(settings: BenchSettings, opts: Options) -> list[Row]:
    """The sequential loop, the classic pool(s), then the engine sweep with get's defaults in it."""
    methods = settings.start_methods or (opts.start_method,)
    classic = sorted({min(n, opts.per_host or n) for n in settings.classic_workers})
    rows = [Row(SEQUENTIAL)]
    rows += [Row(CLASSIC, n, 1, methods[0], settings.chunksize) for n in classic]
    configs = {(m, t, w) for m in methods for t in settings.threads for w in settings.workers}
    workers, threads, method = get_defaults()
    configs.add((method, threads, workers))  # always a row: the advice compares with it
    for m, t, w in sorted(configs, key=lambda c: (methods.index(c[0]) if c[0] in methods else 99, c[1], c[2])):
        rows.append(Row(ENGINE, w, t, m, is_default=(m, t, w) == (method, threads, workers)))
    return rows
