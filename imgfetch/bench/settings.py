"""The options of ``imgfetch bench``, each declared once (as ``imgfetch.Options`` declares get's); some are get's
own (:data:`SHARED_WITH_GET`) or the built-in server's (``redeclared``)."""
from __future__ import annotations

from dataclasses import dataclass

from ..options import START_METHODS, default_workers
from ..options.checks import each_one_of, number, optional, whole, whole_numbers
from ..options.spec import check_fields, option, redeclared
from ..server.settings import ServerSettings

DEFAULT_THREADS = (1, 16, 128, 256)  # from one thread per worker to past get's default of 128
MIN_SECONDS, MAX_SECONDS = 0.05, 3600  # --seconds counted per run: too short to count anything, an hour
MAX_RAMP = 60             # --ramp seconds: starting processes takes seconds, not minutes
SHARED_WITH_GET = ("per_host", "rate", "max_time", "timeout", "retries")  # Options fields that every row's downloads use
COMPARE, MEASURE, OUTPUT = "what to compare", "how to measure", "output"
_SIZES = whole_numbers(1)


def default_worker_sweep(cpus: int | None = None) -> tuple[int, ...]:
    """1, 2, 4, ... up to get's default for this many CPUs (default: the usable ones), that value included."""
    top = default_workers(cpus)
    return (*(2 ** k for k in range(top.bit_length()) if 2 ** k < top), top)


@dataclass(frozen=True)
class BenchSettings:
    """What to benchmark; validated like Options (OptionError naming the option)."""

    urls: str | None = option(None, help="a URL list file; None: the built-in server")
    # the server's own declarations, with a web-like latency by default (a run takes as many images as it can)
    count: int = redeclared(ServerSettings, "count", 1500)
    latency_ms: float = redeclared(ServerSettings, "latency_ms", 60.0)
    latency_spread: float = redeclared(ServerSettings, "latency_spread", 1.0)
    limit: int | None = option(None, group=COMPARE, check=optional(whole(1)), parse=int, metavar="N", default_text="all",
                               help="use only the first N URLs (or images of the server)")
    workers: tuple[int, ...] = option(default_factory=default_worker_sweep, group=COMPARE, check=_SIZES,
                                      metavar="N,N,...", default_text="1, 2, 4, ... up to get's default",
                                      help="engine: worker processes to sweep")
    threads: tuple[int, ...] = option(DEFAULT_THREADS, group=COMPARE, check=_SIZES, metavar="N,N,...",
                                      help="engine: download threads per worker to sweep; get's defaults are always "
                                           "a row")
    start_methods: tuple[str, ...] = option((), group=COMPARE, check=each_one_of(START_METHODS), metavar="M,M,...",
                                            default_text="get's: forkserver on Linux, spawn elsewhere",
                                            help="sweep the engine per start method: fork, spawn, forkserver; the "
                                                 "first one also starts the classic pool")
    classic_workers: tuple[int, ...] = option((3,), group=COMPARE, check=_SIZES, metavar="N,N,...",
                                              help="processes of the classic ProcessPoolExecutor(N).map row(s)")
    chunksize: int = option(1, group=COMPARE, check=whole(1), parse=int, metavar="C",
                            help="the classic row's executor.map(..., chunksize=C)")
    seconds: float = option(1.0, group=MEASURE, check=number(at_least=MIN_SECONDS, at_most=MAX_SECONDS), parse=float,
                            metavar="S", help="each run counts the images saved in S seconds, after the ramp")
    ramp: float = option(0.3, group=MEASURE, check=number(at_least=0, at_most=MAX_RAMP), parse=float, metavar="S",
                         help="seconds at the start of each run that are not counted, while processes, threads "
                              "and connections start")
    repeat: int = option(3, group=MEASURE, check=whole(1), parse=int, metavar="N",
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
