"""The options of ``imgfetch bench``, each declared once (as ``imgfetch.Options`` declares get's).

:class:`BenchSettings` is what to compare and how to measure it; :class:`BenchOutputs` is what to
write besides the table. The CLI derives its arguments from them; ``--per-host``, ``--rate``,
``--max-time``, ``--timeout`` and ``--retries`` are get's own declarations (:data:`SHARED_WITH_GET`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..options import START_METHODS, usable_cpus
from ..options.checks import comma_list
from ..errors import OptionError
from ..options.spec import Check, check_fields, option

DEFAULT_THREADS = (1, 16, 128, 256)  # from one thread per worker to past get's default of 128
MAX_SWEEP_WORKERS = 32    # the default worker sweep stops here, however many CPUs
WORKERS_PER_CPU = 2       # get's default: two worker processes per usable CPU
MAX_LATENCY_MS = 60_000   # --latency-ms: a minute per image is already far past any real host
MAX_LATENCY_SPREAD = 5    # --latency-spread, the log-normal sigma: 5 already spans orders of magnitude
MIN_SECONDS, MAX_SECONDS = 0.05, 3600  # --seconds counted per run: too short to count anything, an hour
MAX_RAMP = 60             # --ramp seconds: starting processes takes seconds, not minutes
SHARED_WITH_GET = ("per_host", "rate", "max_time", "timeout", "retries")  # Options fields that every row's downloads use
SERVER, COMPARE, MEASURE, OUTPUT = "the built-in server", "what to compare", "how to measure", "output"


def default_worker_sweep(cpus: int | None = None) -> tuple[int, ...]:
    """1, 2, 4, ... up to 2 x the CPUs (get's default), that value included; at most 32."""
    top = min(MAX_SWEEP_WORKERS, WORKERS_PER_CPU * (cpus or usable_cpus()))
    sizes, n = [], 1
    while n < top:
        sizes.append(n)
        n *= 2
    return tuple(sizes + [top])


def _sizes(name: str, value: Any) -> tuple[int, ...]:
    """Pool sizes, as 1,2,4 or a tuple: sorted, each once; an OptionError naming the option otherwise."""
    if isinstance(value, str):
        try:
            value = tuple(int(part) for part in value.split(","))
        except ValueError:
            raise OptionError(f"{name} takes comma-separated whole numbers like 1,2,4, got {value!r}", name) from None
    sizes = tuple(value)
    if not sizes or any(n < 1 for n in sizes):
        raise OptionError(f"{name} sizes must be >= 1, got {','.join(map(str, sizes))!r}", name)
    return tuple(sorted(set(sizes)))


def _at_least(low: int) -> Check:
    def check(name: str, value: Any) -> Any:
        if value is not None and not value >= low:
            raise OptionError(f"{name} must be >= {low}, got {value}", name)
        return value
    return check


def _between(low: float, high: float) -> Check:
    def check(name: str, value: Any) -> Any:
        if not low <= value <= high:  # also refuses nan
            raise OptionError(f"{name} must be between {low:g} and {high:g}, got {value:g}", name)
        return value
    return check


def _start_methods(name: str, value: Any) -> tuple[str, ...]:
    methods = comma_list(value) if isinstance(value, str) else tuple(value)
    unknown = [m for m in methods if m not in START_METHODS]
    if unknown:
        raise OptionError(f"{name}: unknown start method {', '.join(unknown)}; choose from {', '.join(START_METHODS)}",
                          name)
    return methods


@dataclass(frozen=True)
class BenchSettings:
    """What to benchmark; validated like Options (OptionError naming the option)."""

    urls: str | None = option(None, help="a URL list file; None: the built-in server")
    count: int = option(1500, group=SERVER, check=_at_least(1), parse=int, metavar="N",
                        help="images it serves; a run takes as many as it can in --seconds")
    latency_ms: float = option(60.0, group=SERVER, check=_between(0, MAX_LATENCY_MS), parse=float, metavar="MS",
                               help="median latency per image")
    latency_spread: float = option(1.0, group=SERVER, check=_between(0, MAX_LATENCY_SPREAD), parse=float,
                                   metavar="SIGMA",
                                   help="sigma of the log-normal per-image latency: 1.0 puts p90 at 3.6 x and p99 at "
                                        "10 x the median, as on the internet; 0 for a fixed latency")
    limit: int | None = option(None, group=COMPARE, check=_at_least(1), parse=int, metavar="N", default_text="all",
                               help="use only the first N URLs (or images of the server)")
    workers: tuple[int, ...] = option(default_factory=default_worker_sweep, group=COMPARE, check=_sizes,
                                      metavar="N,N,...", default_text="1, 2, 4, ... up to get's default",
                                      help="engine: worker processes to sweep")
    threads: tuple[int, ...] = option(DEFAULT_THREADS, group=COMPARE, check=_sizes, metavar="N,N,...",
                                      help="engine: download threads per worker to sweep; get's defaults are always "
                                           "a row")
    start_methods: tuple[str, ...] = option((), group=COMPARE, check=_start_methods, metavar="M,M,...",
                                            default_text="get's: forkserver on Linux, spawn elsewhere",
                                            help="sweep the engine per start method: fork, spawn, forkserver; the "
                                                 "first one also starts the classic pool")
    classic_workers: tuple[int, ...] = option((3,), group=COMPARE, check=_sizes, metavar="N,N,...",
                                              help="processes of the classic ProcessPoolExecutor(N).map row(s)")
    chunksize: int = option(1, group=COMPARE, check=_at_least(1), parse=int, metavar="C",
                            help="the classic row's executor.map(..., chunksize=C)")
    seconds: float = option(1.0, group=MEASURE, check=_between(MIN_SECONDS, MAX_SECONDS), parse=float, metavar="S",
                            help="each run counts the images saved in S seconds, after the ramp")
    ramp: float = option(0.3, group=MEASURE, check=_between(0, MAX_RAMP), parse=float, metavar="S",
                         help="seconds at the start of each run that are not counted, while processes, threads "
                              "and connections start")
    repeat: int = option(3, group=MEASURE, check=_at_least(1), parse=int, metavar="N",
                         help="runs per row, interleaved: two, and up to N for a row whose runs differ by over "
                              "10 %; the table shows their median and min-max")
    keep: str | None = option(None, group=OUTPUT, metavar="DIR", default_text="temporary, removed",
                              help="keep every run's downloads under DIR")

    def __post_init__(self) -> None:
        if not self.workers:  # () asks for the default sweep, as leaving it out does
            object.__setattr__(self, "workers", default_worker_sweep())
        check_fields(self)


@dataclass(frozen=True)
class BenchOutputs:
    """What ``imgfetch bench`` writes and logs besides its table."""

    json: str | None = option(None, group=OUTPUT, metavar="PATH",
                              help="write the machine, the date, the settings and every run as JSON")
    chart: str | None = option(None, group=OUTPUT, metavar="PATH.png",
                               help="draw images/s against concurrency as a PNG (pip install 'imgfetch[plot]')")
    chart_size: str = option("1200x800", group=OUTPUT, metavar="WxH", help="chart size in pixels")
    log_pids: bool = option(False, group=MEASURE, action="store_true",
                            help="log '[Process ID]:<pid> Downloading..' (classic) and '... Downloading <url>' "
                                 "(engine) as each download starts; -v does too")
