"""imgfetch.Downloader: what warm workers buy, measured against the built-in server in its own process.

    python benchmarks/downloader.py                   # all four parts, about a minute
    python benchmarks/downloader.py --only latency    # or asyncio, bursts, idle

- latency: after warm-up, one URL at a time at a fixed server latency (default 50 ms): how long
  from submit() to the record in hand (median, p90), and how much of that is the parent's share
  (total minus the record's elapsed_s, which the worker measured around its own download).
- asyncio: N URLs (default 10,000) submitted from an asyncio program and awaited through
  asyncio.wrap_future, while a 1 ms ticker measures the event loop's lag (how late each tick is).
  Three programs: one submits every URL in one go, one in slices of 100 with an await between, and
  the same with the workers' CPU priority lowered (initializer=os.nice, initargs=(10,)).
- bursts: bursts of 10 URLs, each through a warm Downloader's map() or a fresh download().
- idle: CPU used by the parent and every worker process while a warm Downloader waits for 5 s.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from imgfetch import Downloader, download
from imgfetch.bench.serverproc import ServerProcess
from imgfetch.server import ServerSettings

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ASYNC_SLICE = 100  # URLs submitted between two awaits, in the sliced program


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def distinct(urls: list[str], n: int, tag: str) -> list[str]:
    """n distinct URLs over the server's images (a query the server ignores makes each one new)."""
    return [f"{urls[i % len(urls)]}?{tag}={i}" for i in range(n)]


def latency(urls: list[str], out: Path, args: argparse.Namespace) -> None:
    with Downloader(out, workers=2, threads=16) as d:
        list(d.map(distinct(urls, 100, "warm")))
        totals, parent = [], []
        for url in distinct(urls, args.samples, "lat"):
            started = time.monotonic()
            record = d.submit(url).result()
            took = time.monotonic() - started
            assert record.status == "ok", record
            totals.append(took)
            parent.append(took - (record.elapsed_s or 0.0))
    over = statistics.median(totals) - args.latency_ms / 1000
    print(f"latency: {len(totals)} URLs one at a time, server latency {args.latency_ms:g} ms: submit -> record "
          f"median {ms(statistics.median(totals))} (latency + {ms(over)}), p90 {ms(quantile(totals, 0.9))}, "
          f"min {ms(min(totals))}; the parent's share (outside the worker's download) median "
          f"{ms(statistics.median(parent))}, p90 {ms(quantile(parent, 0.9))}")


async def _crawl(d: Downloader, urls: list[str], sliced: bool) -> tuple[list[float], float, int]:
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            before = time.monotonic()
            await asyncio.sleep(0.001)
            lags.append(time.monotonic() - before - 0.001)

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    started = time.monotonic()
    waiting = []
    for n, url in enumerate(urls, 1):
        waiting.append(asyncio.wrap_future(d.submit(url)))
        if sliced and n % ASYNC_SLICE == 0:
            await asyncio.sleep(0)
    records = await asyncio.gather(*waiting)
    took = time.monotonic() - started
    stop.set()
    await tick
    return lags, took, sum(r.status == "ok" for r in records)


def asyncio_run(urls: list[str], out: Path, args: argparse.Namespace) -> None:
    programs = [("in one go", False, {}), (f"in slices of {ASYNC_SLICE}", True, {}),
                (f"in slices of {ASYNC_SLICE}, workers at nice 10", True, dict(initializer=os.nice, initargs=(10,)))]
    for n, (how, sliced, niced) in enumerate(programs):
        with Downloader(out / str(n), **niced) as d:  # get's pool size: 2 x the CPUs, 128 threads each
            list(d.map(distinct(urls, 200, "warm")))
            batch = distinct(urls, args.asyncio_urls, f"a{n}")
            cpu = time.process_time()
            lags, took, ok = asyncio.run(_crawl(d, batch, sliced))
            cpu = time.process_time() - cpu
        print(f"asyncio: {len(batch):,} URLs submitted {how}, all awaited via wrap_future: {ok:,} ok in {took:.2f} s "
              f"({len(batch) / took:,.0f}/s; this process used {100 * cpu / took:.0f} % of a CPU); loop lag over "
              f"{len(lags):,} ticks: p50 {ms(quantile(lags, 0.5))}, p90 {ms(quantile(lags, 0.9))}, "
              f"p99 {ms(quantile(lags, 0.99))}, max {ms(max(lags))}")


def bursts(urls: list[str], out: Path, args: argparse.Namespace) -> None:
    size, options = 10, dict(workers=2, threads=16)
    warm, fresh = [], []
    with Downloader(out / "warm", **options) as d:
        list(d.map(distinct(urls, 50, "warm")))
        for n in range(args.bursts):
            started = time.monotonic()
            records = list(d.map(distinct(urls, size, f"w{n}")))
            warm.append(time.monotonic() - started)
            assert all(r.status == "ok" for r in records)
    download(distinct(urls, 20, "warmup"), out / "fresh-warmup", progress=False, **options)  # the fork server's start
    for n in range(args.bursts):
        started = time.monotonic()
        results = download(distinct(urls, size, f"f{n}"), out / f"fresh-{n}", progress=False, **options)
        fresh.append(time.monotonic() - started)
        assert all(r.status == "ok" for r in results)
    w, f = statistics.median(warm), statistics.median(fresh)
    print(f"bursts: {args.bursts} bursts of {size} URLs (server latency {args.latency_ms:g} ms, 2 workers x 16 threads): "
          f"warm Downloader.map median {ms(w)} (min {ms(min(warm))}, max {ms(max(warm))}); fresh download() median "
          f"{ms(f)} (min {ms(min(fresh))}, max {ms(max(fresh))}); fresh / warm = {f / w:.1f}x")


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def idle(urls: list[str], out: Path, args: argparse.Namespace) -> None:
    seconds = 5.0
    with Downloader(out) as d:
        list(d.map(distinct(urls, 200, "warm")))
        time.sleep(0.5)
        pids = [os.getpid()] + [p.pid for p in multiprocessing.active_children()]
        before = {pid: _cpu_s(pid) for pid in pids}
        time.sleep(seconds)
        used = {pid: _cpu_s(pid) - before[pid] for pid in pids}
    workers = sum(v for pid, v in used.items() if pid != os.getpid())
    print(f"idle: a warm Downloader ({len(pids) - 1} child processes) waiting {seconds:g} s used "
          f"{ms(used[os.getpid()])} of CPU in the parent and {ms(workers)} in all its children together "
          f"({100 * (used[os.getpid()] + workers) / seconds:.2f} % of one CPU); the clock counts in "
          f"{1000 / CLOCK_TICKS:g} ms ticks")


PARTS = {"latency": latency, "asyncio": asyncio_run, "bursts": bursts, "idle": idle}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--asyncio-urls", type=int, default=10_000)
    parser.add_argument("--bursts", type=int, default=10)
    parser.add_argument("--only", choices=list(PARTS), action="append")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start")
    out = Path(tempfile.mkdtemp(prefix="imgfetch-downloader-bench-"))
    try:
        with ServerProcess(ServerSettings(count=200, latency_ms=args.latency_ms)) as server:
            for name in args.only or list(PARTS):
                PARTS[name](server.urls, out / name, args)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
