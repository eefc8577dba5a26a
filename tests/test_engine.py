"""The streaming engine, against the real server: no head-of-line blocking, records one by one,
every download slot busy on a resumed or rate-limited list, the initializer."""
from __future__ import annotations

import os
import time

import pytest

from conftest import FAST, assert_clean, read_manifest
from imgfetch import ImgFetchError, download, iter_download
from imgfetch.server import ImageServer

SLOW_OK = dict(FAST, timeout=3.0)  # for URLs that are slow on purpose


def timed(records):
    """(seconds since the first call, record) for each record as the iterator yields it."""
    started = time.monotonic()
    return [(time.monotonic() - started, record) for record in records]


def test_one_hanging_url_does_not_hold_the_urls_beside_it(server, tmp_path):
    # Fork only: a worker's threads, whatever started it (each start method: test_download.py).
    hang = server.url("/hang?seconds=2")
    fast = server.image_urls()[:200]
    opts = dict(FAST, timeout=5, max_time=10, retries=0)
    seen = timed(iter_download([hang, *fast], tmp_path / "o", workers=1, threads=8, start_method="fork", **opts))
    assert len(seen) == 201
    last_at, last = seen[-1]
    assert last.line == 1 and last.status == "failed"  # the hang ends last ...
    assert all(r.status == "ok" for _, r in seen[:-1])
    fast_done_at = seen[-2][0]
    assert fast_done_at < last_at - 0.5  # ... and the 200 beside it did not wait for it
    assert fast_done_at < 1.9


def test_records_arrive_one_by_one_as_each_url_finishes(server, tmp_path):
    urls = [server.url(f"/img/{i}.{ext}?latency_ms={ms}") for i, ext, ms in
            [(0, "jpg", 700), (1, "png", 0), (2, "webp", 350), (3, "gif", 100)]]
    seen = timed(iter_download(urls, tmp_path / "o", workers=1, threads=4, start_method="fork", **FAST))
    assert [r.line for _, r in seen] == [2, 4, 3, 1]  # in the order they finished, not in batches
    times = [t for t, _ in seen]
    assert times[3] - times[0] > 0.5 and times[2] - times[1] > 0.15


def test_a_resume_that_is_90_percent_done_keeps_every_thread_busy(tmp_path):
    with ImageServer(count=200, seed=5) as server:
        urls = [u + "?latency_ms=300" for u in server.image_urls()]
        todo = set(range(9, 200, 10))  # every tenth URL is left for the second run
        first = download([u for i, u in enumerate(urls) if i not in todo], tmp_path / "o", workers=2, threads=32,
                         start_method="fork", **SLOW_OK)
        assert len(first) == 180 and all(r.status == "ok" for r in first)
        server.stats.reset()
        second = download(urls, tmp_path / "o", workers=1, threads=8, start_method="fork", **SLOW_OK)
    assert sum(r.skipped for r in second) == 180 and all(r.status == "ok" for r in second)
    assert server.stats.requests == 20
    assert server.stats.max_in_flight == 8  # all eight threads, not chunks shrunk by the skipped records


def test_rate_limit_still_keeps_several_downloads_in_flight_per_worker(tmp_path):
    with ImageServer(count=12, latency_ms=600) as server:
        started = time.monotonic()
        results = download(server.image_urls(), tmp_path / "o", workers=1, threads=8, rate=20,
                           start_method="fork", **SLOW_OK)
        elapsed = time.monotonic() - started
    assert all(r.status == "ok" for r in results)
    assert server.stats.max_in_flight >= 6  # a start every 50 ms, each lasting 600 ms
    assert 0.55 <= elapsed < 3.0  # 12 starts at 20/s need 11 intervals of 50 ms, then 600 ms


def _mark(folder: str, tag: str) -> None:
    with open(os.path.join(folder, f"{tag}-{os.getpid()}"), "w"):
        pass


def _explode(message: str) -> None:
    raise RuntimeError(message)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_initializer_runs_once_in_every_worker(server, tmp_path, start_method):
    marks = tmp_path / "marks"
    marks.mkdir()
    results = download(server.image_urls()[:40], tmp_path / "o", workers=2, threads=4, start_method=start_method,
                       initializer=_mark, initargs=(str(marks), "init"), **FAST)
    assert all(r.status == "ok" for r in results)
    marked = {int(name.split("-")[1]) for name in os.listdir(marks)}
    assert len(marked) == 2 and {r.pid for r in results} <= marked


def test_a_failing_initializer_ends_the_run_with_its_message(server, tmp_path):
    with pytest.raises(ImgFetchError, match="the worker initializer failed: RuntimeError: no GPU here"):
        download(server.image_urls()[:4], tmp_path / "o", workers=1, threads=2, start_method="fork",
                 initializer=_explode, initargs=("no GPU here",), **FAST)
    assert read_manifest(tmp_path / "o" / "manifest.jsonl") == []
    assert_clean(tmp_path / "o", [])


def test_many_hosts_under_a_low_open_files_limit_never_run_out_of_descriptors(tmp_path):
    import resource
    import subprocess
    import sys
    from contextlib import ExitStack

    with ExitStack() as stack:
        servers = [stack.enter_context(ImageServer(count=10, seed=k)) for k in range(24)]  # 24 hosts
        urls = tmp_path / "urls.txt"
        urls.write_text("".join(u + "\n" for s in servers for u in s.image_urls()))

        def low_limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (112, 112))

        proc = subprocess.run([sys.executable, "-m", "imgfetch", "get", str(urls), "-o", str(tmp_path / "o"), "-q",
                               "--workers", "1", "--threads", "8", "--start-method", "fork", "--timeout", "3"],
                              capture_output=True, text=True, timeout=120, preexec_fn=low_limit)
    records = read_manifest(tmp_path / "o" / "manifest.jsonl")
    assert proc.returncode == 0, (proc.stderr, [r["error"] for r in records if r["status"] != "ok"][:3])
    assert len(records) == 240 and all(r["status"] == "ok" for r in records)
