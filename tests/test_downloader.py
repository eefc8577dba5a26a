"""imgfetch.Downloader against what the standard library documents for executors and Futures.

Everything here crosses process boundaries, so it runs against the real built-in server.
"""
from __future__ import annotations

import asyncio
import concurrent.futures as cf
import inspect
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import FAST, START_METHODS, assert_clean, read_manifest, tree
from imgfetch import Downloader, ImgFetchError
from imgfetch.errors import DiskFull
from imgfetch.server import ImageServer
from test_diskfull import small_disk  # noqa: F401  (a fixture: a 600 KB tmpfs)

OPTS = {**{key: value for key, value in FAST.items() if key != "progress"}, "timeout": 2.0}  # slow URLs are slow, not dead
SLOW_MS = 800  # a URL that holds its thread well past what a test looks at meanwhile


def slow(server, i: int = 0, ms: int = SLOW_MS) -> str:
    return server.image_urls()[i] + f"?latency_ms={ms}"


def manifest_urls(out) -> list[str]:
    return [record["url"] for record in read_manifest(out / "manifest.jsonl")]


@pytest.mark.parametrize("method", START_METHODS)
def test_submit_returns_a_future_whose_record_is_in_the_manifest_first(server, tmp_path, method):
    out = tmp_path / "out"
    with Downloader(out, workers=1, threads=4, start_method=method, **OPTS) as d:
        ok = d.submit(server.image_urls()[0])
        missing = d.submit(server.url("/status/404"))
        record = ok.result(timeout=10)
        assert isinstance(ok, cf.Future) and record.status == "ok" and record.line == 1
        assert (out / record.path).read_bytes() == server.image_bytes(0) and record.abspath == str(out / record.path)
        assert record.url in manifest_urls(out)  # written before the Future was done
        failed = missing.result(timeout=10)  # a failed URL is a record, not an exception
        assert failed.status == "failed" and failed.error == "HTTP 404 Not Found" and failed.line == 2
        assert d.submit("not a url").result(timeout=10).status == "invalid"
    assert_clean(out, read_manifest(out / "manifest.jsonl"))  # shut down: no lock, no temporary folder


def test_map_yields_in_input_order_lazily_and_times_out_from_the_iterator(server, tmp_path):
    urls = [server.image_urls()[i] + f"?latency_ms={400 - 100 * i}" for i in range(4)]  # the last is done first
    with Downloader(tmp_path / "out", workers=1, threads=8, **OPTS) as d:
        records = list(d.map(urls))
        assert [r.url for r in records] == urls and [r.line for r in records] == [1, 2, 3, 4]
        assert all(r.status == "ok" for r in records)
        assert [r.line for r in d.map(iter(server.image_urls()[10:13]))] == [5, 6, 7]  # any iterable, even a generator

        started = time.monotonic()
        records = d.map([slow(server, 20), server.image_urls()[21]], timeout=0.3)
        with pytest.raises(cf.TimeoutError):
            next(records)
        assert 0.25 < time.monotonic() - started < 1.0
        with pytest.raises(TypeError, match="for a list file, use imgfetch.download"):
            d.map("urls.txt")


def test_leaving_map_early_cancels_what_has_not_started(server, tmp_path):
    out = tmp_path / "out"
    urls = [server.image_urls()[i] + "?latency_ms=500" for i in range(180, 190)]
    with Downloader(out, workers=1, threads=1, **OPTS) as d:
        records = d.map(urls)
        assert next(records).url == urls[0]
        records.close()  # as a `break` does
    fetched = manifest_urls(out)
    # What the worker held when the loop was left (3), and one or two more if this thread was slow to leave.
    assert fetched[0] == urls[0] and len(fetched) <= 5
    assert_clean(out, read_manifest(out / "manifest.jsonl"))


def test_cancel_works_for_queued_urls_only(server, tmp_path):
    out = tmp_path / "out"
    with Downloader(out, workers=1, threads=1, **OPTS) as d:
        # One thread: the slow URL runs, two more wait in the worker (its queue), the rest in the parent.
        futures = [d.submit(slow(server, 0, 800))] + [d.submit(url) for url in server.image_urls()[1:6]]
        deadline = time.monotonic() + 5
        while not futures[0].running() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert futures[0].running() and not futures[0].cancel()  # handed to a worker: too late
        assert futures[5].cancel() and futures[5].cancelled()
        with pytest.raises(cf.CancelledError):
            futures[5].result()
        assert [f.result(timeout=10).status for f in futures[:5]] == ["ok"] * 5
    assert server.image_urls()[5] not in manifest_urls(out)  # a cancelled URL is not recorded: a later run fetches it


@pytest.mark.parametrize("method", START_METHODS)
def test_shutdown_waits_and_cancel_futures_drops_what_is_queued(server, tmp_path, method):
    out = tmp_path / "out"
    d = Downloader(out, workers=1, threads=1, start_method=method, **OPTS)
    urls = [slow(server, 30, 500), *server.image_urls()[31:40]]
    futures = [d.submit(url) for url in urls]
    deadline = time.monotonic() + 5
    while not futures[2].running() and time.monotonic() < deadline:  # the worker holds its thread's and its queue's
        time.sleep(0.01)
    d.shutdown(wait=True, cancel_futures=True)
    assert all(f.done() for f in futures)
    kept = [f for f in futures if not f.cancelled()]
    assert 3 <= len(kept) < 10 and kept == futures[:len(kept)]  # running: the slow one, two queued in the worker
    assert all(f.result().status == "ok" for f in kept)          # (and more only if this thread was slow to ask)
    assert set(manifest_urls(out)) == {f.result().url for f in kept}
    assert_clean(out, read_manifest(out / "manifest.jsonl"))
    with pytest.raises(RuntimeError, match="after shutdown"):
        d.submit(server.image_urls()[0])

    with Downloader(out, workers=1, threads=4, **OPTS) as again:  # the folder was released
        records = list(again.map(urls))
    assert [r.skipped for r in records] == [True] * len(kept) + [False] * (10 - len(kept))  # cancelled: fetched now


def test_shutdown_without_wait_returns_at_once_and_frees_the_folder_later(server, tmp_path):
    out = tmp_path / "out"
    d = Downloader(out, workers=1, threads=2, **OPTS)
    future = d.submit(slow(server, 50, 600))
    started = time.monotonic()
    d.shutdown(wait=False)
    assert time.monotonic() - started < 0.3 and not future.done()
    assert future.result(timeout=10).status == "ok"  # pending work still completes
    deadline = time.monotonic() + 10
    while (out / ".imgfetch.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert_clean(out, read_manifest(out / "manifest.jsonl"))


def test_a_callback_that_raises_is_logged_and_breaks_nothing(server, tmp_path, caplog):
    seen = []

    def bad(_future):
        raise ValueError("a bug in the caller's callback")

    with Downloader(tmp_path / "out", workers=1, threads=4, **OPTS) as d:
        first = d.submit(server.image_urls()[60])
        first.add_done_callback(bad)
        first.add_done_callback(seen.append)  # callbacks after the bad one still run
        rest = [d.submit(url) for url in server.image_urls()[61:64]]
        assert [f.result(timeout=10).status for f in [first, *rest]] == ["ok"] * 4
        assert d.submit(server.image_urls()[64]).result(timeout=10).status == "ok"  # the driver lives on
    assert seen == [first]
    assert any("exception calling callback" in r.message and r.exc_info[0] is ValueError for r in caplog.records)


def test_as_completed_and_wait_see_records_as_they_finish(server, tmp_path):
    with Downloader(tmp_path / "out", workers=1, threads=4, **OPTS) as d:
        late = d.submit(slow(server, 70))
        soon = d.submit(server.image_urls()[71])
        done, pending = cf.wait([late, soon], return_when=cf.FIRST_COMPLETED, timeout=5)
        assert done == {soon} and pending == {late}
        assert list(cf.as_completed([late, soon], timeout=5)) == [soon, late]


def test_asyncio_wrap_future_runs_many_urls_from_an_event_loop(server, tmp_path):
    urls = [f"{server.image_urls()[i % 40]}?n={i}" for i in range(600)]  # distinct URLs, small images

    async def crawl(d):
        lags = []

        async def ticker():
            while True:
                before = time.monotonic()
                await asyncio.sleep(0.001)
                lags.append(time.monotonic() - before - 0.001)

        tick = asyncio.create_task(ticker())
        records = await asyncio.gather(*(asyncio.wrap_future(d.submit(url)) for url in urls))
        tick.cancel()
        return records, lags

    with Downloader(tmp_path / "out", workers=2, threads=16, **OPTS) as d:
        records, lags = asyncio.run(crawl(d))
    assert [r.url for r in records] == urls and all(r.status == "ok" for r in records)
    assert len(lags) > 10  # the loop kept turning while the downloads ran


def test_workers_stay_warm_between_bursts(server, tmp_path):
    # Fork only: each start method's workers serve a Downloader in test_submit_returns_a_future_whose_record_is_...
    with Downloader(tmp_path / "out", workers=2, threads=4, start_method="fork", **OPTS) as d:
        children = {p.pid for p in multiprocessing.active_children()}
        first = {r.pid for r in d.map(server.image_urls()[80:100])}
        time.sleep(0.3)  # idle between bursts
        second = {r.pid for r in d.map(server.image_urls()[100:120])}
        assert {p.pid for p in multiprocessing.active_children()} == children  # no process started
    assert second <= first <= children and len(first) == 2


def test_a_url_in_flight_or_done_is_fetched_once(fresh_server, tmp_path):
    out = tmp_path / "out"
    url = fresh_server.image_urls()[0] + "?latency_ms=300"
    with Downloader(out, workers=1, threads=4, **OPTS) as d:
        first, second = d.submit(url), d.submit(url)
        a, b = first.result(timeout=10), second.result(timeout=10)
        later = d.submit(url).result(timeout=10)
    assert fresh_server.stats.requests == 1
    assert (a.skipped, b.skipped, later.skipped) == (False, True, True) and a.path == b.path == later.path
    assert (a.line, b.line, later.line) == (1, 2, 3)
    assert len(read_manifest(out / "manifest.jsonl")) == 1  # one record: the others say nothing new
    with Downloader(out, workers=1, threads=1, **OPTS) as d:  # and in a later Downloader, from the manifest
        assert d.submit(url).result(timeout=10).skipped
    assert fresh_server.stats.requests == 1


def _fail_to_start():
    raise RuntimeError("no GPU here")


def test_a_run_level_failure_reaches_pending_futures_and_later_submits(server, tmp_path):
    d = Downloader(tmp_path / "out", workers=1, threads=2, initializer=_fail_to_start, start_method="fork", **OPTS)
    future = d.submit(server.image_urls()[0])
    with pytest.raises(ImgFetchError, match="the worker initializer failed: RuntimeError: no GPU here"):
        future.result(timeout=10)
    with pytest.raises(ImgFetchError, match="no GPU here"):
        d.submit(server.image_urls()[1])
    d.shutdown()
    assert not (tmp_path / "out" / ".imgfetch.lock").exists()


def test_the_signature_is_downloads_options_without_the_bar(tmp_path):
    parameters = inspect.signature(Downloader).parameters
    assert {"out_dir", "workers", "threads", "max_time", "executor", "initializer", "options"} <= set(parameters)
    assert "progress" not in parameters and "input_format" not in parameters
    with pytest.raises(TypeError, match="did you mean 'workers'"):
        Downloader(tmp_path / "out", wrokers=2)
    with pytest.raises(TypeError, match="progress"):
        Downloader(tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="^threads must be a whole number >= 1"):
        Downloader(tmp_path / "out", threads=0)
    assert not (tmp_path / "out").exists()


def test_dask_executor(server, tmp_path):
    pytest.importorskip("distributed")
    with Downloader(tmp_path / "out", executor="dask", workers=1, threads=4, **OPTS) as d:
        records = list(d.map(server.image_urls()[140:150]))
        assert d.submit(server.image_urls()[150]).result(timeout=30).status == "ok"
    assert all(r.status == "ok" for r in records) and [r.line for r in records] == list(range(1, 11))


def test_in_a_jupyter_kernel(server, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    urls = server.image_urls()[160:170]
    cells = [
        f"import asyncio, concurrent.futures as cf, imgfetch\nurls = {json.dumps(urls)}\n"
        "d = imgfetch.Downloader('out', workers=1, threads=4, retries=0, timeout=2)",
        "record = await asyncio.wrap_future(d.submit(urls[0]))  # the kernel's own event loop\nprint(record.status)",
        "print(sorted(f.result().line for f in cf.as_completed([d.submit(u) for u in urls[1:5]])))",
        "print([r.status for r in d.map(urls[5:])])",
        "d.shutdown()\nprint(sorted(p.name for p in __import__('pathlib').Path('out').iterdir())[-1])",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = ["".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream").strip()
               for cell in notebook.cells]
    assert printed[1:] == ["ok", "[2, 3, 4, 5]", str(["ok"] * 5), "manifest.jsonl"]


def test_a_script_that_never_shuts_down_finishes_its_urls_and_exits(server, tmp_path):
    script = tmp_path / "forgot.py"
    script.write_text(textwrap.dedent(f"""\
        import imgfetch

        if __name__ == "__main__":
            d = imgfetch.Downloader("out", workers=1, threads=2, timeout=2)
            d.submit({server.image_urls()[200] + "?latency_ms=300"!r})
            print("submitted")
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env=env)
    assert done.returncode == 0 and done.stdout == "submitted\n", done.stderr
    records = read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert [r["status"] for r in records] == ["ok"]  # finished at exit, as an executor's pending work is
    assert_clean(tmp_path / "out", records)


def test_a_full_disk_fails_the_pending_futures_and_later_submits(small_disk, tmp_path):
    with ImageServer(count=300, seed=2) as server:
        out = small_disk / "out"
        d = Downloader(out, workers=2, threads=4, **OPTS)
        futures = [d.submit(url) for url in server.image_urls()]
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result(timeout=60).status)
            except DiskFull as exc:
                outcomes.append("disk full")
                assert str(exc).startswith("the disk is full:")
        with pytest.raises(DiskFull):
            d.submit(server.url("/img/0.jpg?again"))
        d.shutdown()
    assert 5 < outcomes.count("ok") < 300 and "disk full" in outcomes
    records = read_manifest(out / "manifest.jsonl")
    ok = [r for r in records if r["status"] == "ok"]
    assert outcomes.count("ok") == len(ok)  # every Future that got an image has its record, and no other
    assert tree(out) == {"manifest.jsonl"} | {r["path"] for r in ok}  # every image on the disk is recorded
