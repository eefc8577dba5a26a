"""Benchmark measurements: a sequential baseline against pooled runs over a sweep of pool sizes."""
from __future__ import annotations

import logging
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import ImgFetchError, OutputError
from .options import Options, usable_cpus

log = logging.getLogger(__name__)
WARMUP_URLS = 8


@dataclass(frozen=True)
class BenchSettings:
    """What to benchmark; validated like Options (ValueError naming the option)."""

    urls: str | None = None          # a list file; None = the built-in server
    count: int = 100
    latency_ms: float = 20.0
    limit: int | None = None
    workers: tuple[int, ...] = ()    # () = powers of two up to 4 x usable CPUs, capped at 32
    threads: tuple[int, ...] = (1,)
    start_methods: tuple[str, ...] = ()
    repeat: int = 3
    keep: str | None = None

    def __post_init__(self) -> None:
        for name in ("count", "repeat"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {self.limit}")
        if self.latency_ms < 0:
            raise ValueError(f"--latency-ms must be >= 0, got {self.latency_ms:g}")
        if not self.workers:
            object.__setattr__(self, "workers", default_worker_sweep())
        for name in ("workers", "threads"):
            if any(n < 1 for n in getattr(self, name)) or not getattr(self, name):
                raise ValueError(f"--{name} sizes must be whole numbers >= 1")


def default_worker_sweep(cpus: int | None = None) -> tuple[int, ...]:
    top = min(32, 4 * (cpus or usable_cpus()))
    sizes, n = [], 1
    while n <= top:
        sizes.append(n)
        n *= 2
    return tuple(sizes)


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
class ConfigResult:
    """All runs of one configuration."""

    mode: str
    workers: int
    threads: int
    start_method: str | None
    times: list[float] = field(default_factory=list)
    failures: int = 0
    bytes: int = 0
    images: int = 0
    pid_counts: dict[int, int] = field(default_factory=dict)
    startup_s: float | None = None

    @property
    def concurrency(self) -> int:
        return self.workers * self.threads

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def images_per_s(self) -> float:
        return self.images / self.median if self.median else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.median if self.median else 0.0

    @property
    def label(self) -> str:
        if self.mode == "sequential":
            return "sequential"
        return f"pooled {self.start_method} w={self.workers} t={self.threads}"


@dataclass
class BenchReport:
    settings: BenchSettings
    url_count: int
    latency_ms: float | None
    sequential: ConfigResult
    pooled: list[ConfigResult]

    @property
    def failures(self) -> int:
        return self.sequential.failures + sum(c.failures for c in self.pooled)

    def speedup(self, config: ConfigResult) -> float:
        return self.sequential.median / config.median if config.median else 0.0

    def recommendation(self) -> ConfigResult:
        """The smallest configuration within 10 % of the best throughput."""
        best = max(c.images_per_s for c in self.pooled)
        good = [c for c in self.pooled if c.images_per_s >= 0.9 * best]
        return min(good, key=lambda c: (c.concurrency, c.workers))


def run_bench(settings: BenchSettings, opts: Options, *, announce: Callable[[str], Any] = log.info,
              on_progress: Callable[[str], Any] | None = None) -> BenchReport:
    """Run every mode on the same URLs and return the measurements."""
    with ExitStack() as stack:
        urls, latency = _urls(settings, stack)
        if not urls:
            raise ImgFetchError("no valid URLs to benchmark")
        keep = _keep_folder(settings.keep) if settings.keep else None
        if keep:
            announce(f"keeping every run's downloads under {keep}")
        methods = settings.start_methods or (opts.start_method,)
        configs = [(m, w, t) for m in methods for t in settings.threads for w in settings.workers]
        total = len(urls) * settings.repeat * (1 + len(configs))
        announce(f"benchmarking {len(urls)} URLs: sequential + {len(configs)} pooled configurations, "
                 f"{settings.repeat} runs each = {total} downloads (plus a {min(WARMUP_URLS, len(urls))}-URL warm-up)")
        _sequential(urls[:WARMUP_URLS], opts.replace(progress=False), _scratch(keep, stack, "warmup"))
        sequential = ConfigResult("sequential", 1, 1, None)
        pooled = [ConfigResult("pooled", w, t, m) for m, w, t in configs]
        for run in range(settings.repeat):  # interleaved, so drift hits every configuration alike
            _measure(sequential, lambda out: _sequential(urls, opts, out, "sequential"), keep, stack, run,
                     on_progress)
            for config in pooled:
                config_opts = opts.replace(workers=config.workers, threads=config.threads,
                                           start_method=config.start_method)
                _measure(config, lambda out: _pooled(urls, config_opts, out, config.label), keep, stack, run,
                         on_progress)
        for config in pooled:
            config.startup_s = pool_startup_s(opts.replace(workers=config.workers, start_method=config.start_method))
        return BenchReport(settings, len(urls), latency, sequential, pooled)


def _urls(settings: BenchSettings, stack: ExitStack) -> tuple[list[str], float | None]:
    if settings.urls is None:
        from .server import ImageServer

        count = min(settings.count, settings.limit or settings.count)
        server = stack.enter_context(ImageServer(count=count, latency_ms=settings.latency_ms))
        for i in range(count):  # render every image before timing anything
            server.image_bytes(i)
        return server.image_urls(), settings.latency_ms
    from .sources import open_entries

    urls: list[str] = []
    seen: set[str] = set()
    with open_entries(settings.urls) as entries:
        for entry in entries:
            if entry.url is not None and entry.url not in seen:
                seen.add(entry.url)
                urls.append(entry.url)
            if settings.limit and len(urls) >= settings.limit:
                break
    return urls, None


def _keep_folder(keep: str) -> Path:
    """A new folder of our own under --keep DIR: nothing already there is touched."""
    parent = Path(keep)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("bench-%Y%m%d-%H%M%S")
        for n in range(1, 1000):
            path = parent / (stamp if n == 1 else f"{stamp}-{n}")
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as exc:
        raise OutputError(f"cannot use --keep {keep}: {exc.strerror or exc}") from None
    raise OutputError(f"cannot use --keep {keep}: too many runs started this second")


def _scratch(keep: Path | None, stack: ExitStack, name: str) -> Path:
    """A fresh folder for one run: under our --keep folder, or a temporary one removed at the end."""
    if keep:
        for n in range(1, 1000):  # "--workers 2,2" names the same run twice
            path = keep / (name if n == 1 else f"{name}-{n}")
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    path = Path(tempfile.mkdtemp(prefix=f"imgfetch-bench-{name}-"))
    stack.callback(shutil.rmtree, path, True)
    return path


def _measure(config: ConfigResult, job: Callable[[Path], list[Any]], keep: Path | None,
             stack: ExitStack, run: int, on_progress: Callable[[str], Any] | None) -> None:
    name = config.label.replace(" ", "_").replace("=", "")
    out = _scratch(keep, stack, f"{name}_run{run + 1}")
    started = time.perf_counter()
    records = job(out)
    config.times.append(time.perf_counter() - started)
    ok = [r for r in records if r.status == "ok"]
    config.failures += len(records) - len(ok)
    config.images, config.bytes = len(ok), sum(r.bytes for r in ok)
    config.pid_counts = dict(Counter(r.pid for r in records if r.pid is not None))
    if not keep:
        shutil.rmtree(out, ignore_errors=True)  # a temporary folder of ours
    if on_progress:
        on_progress(f"{config.label}: run {run + 1} took {config.times[-1]:.2f} s, {len(ok)} ok")


def _sequential(urls: list[str], opts: Options, out: Path, label: str | None = None) -> list[Any]:
    """The baseline (and the warm-up): this process, one request at a time, one session."""
    from .fetcher import Fetcher
    from .records import Task
    from .runner import progress_bar
    from .sources import normalized_key
    from .worker import process_task

    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".imgfetch-tmp-", dir=out))
    fetcher = Fetcher(opts)
    bar = progress_bar(opts.progress, label, total=len(urls))
    records = []
    try:
        for i, url in enumerate(urls):
            records.append(process_task(Task(url, normalized_key(url), i + 1), opts, fetcher, out, tmp))
            if bar is not None:
                bar.update(1)
        return records
    finally:
        if bar is not None:
            bar.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _pooled(urls: list[str], opts: Options, out: Path, label: str) -> list[Any]:
    """The real download() path: pool, manifest, progress bar."""
    from .runner import Run

    return list(Run(urls, out, opts, label=label).results())


def pool_startup_s(opts: Options) -> float:
    """Seconds to start the pool and have every worker import imgfetch and say it is ready."""
    from .pool import LocalPool

    started = time.perf_counter()
    pool = LocalPool(opts, tempfile.gettempdir(), tempfile.gettempdir())
    try:
        while not pool.all_ready():
            pool.poll(0.05)
        return time.perf_counter() - started
    finally:
        pool.close()


def machine_info() -> dict[str, Any]:
    return {"usable_cpus": usable_cpus(), "python": platform.python_version(),
            "platform": platform.platform(), "processor": platform.machine(), "pid": os.getpid()}


def iter_rows(report: BenchReport) -> Iterator[dict[str, Any]]:
    """One dict per configuration, as the table and the JSON show it."""
    for config in [report.sequential, *report.pooled]:
        speedup = report.speedup(config)
        yield {
            "mode": config.mode, "start_method": config.start_method, "workers": config.workers,
            "threads": config.threads, "concurrency": config.concurrency, "times_s": config.times,
            "median_s": config.median, "min_s": min(config.times), "max_s": max(config.times),
            "images_per_s": config.images_per_s, "mb_per_s": config.mb_per_s, "speedup": speedup,
            "efficiency": speedup / config.concurrency, "failures": config.failures,
            "startup_s": config.startup_s, "pid_counts": {str(k): v for k, v in config.pid_counts.items()},
        }
