"""A worker's download threads do not wait for the image step: each hands its body to the backlog
(engine/worker.py) and starts its next download, so a list's last, slow URLs start while images are
still being resized; the backlog is bounded, in bodies and in bytes."""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter

import pytest

from conftest import FAST
from imgfetch import download, iter_download
from imgfetch.engine import worker
from imgfetch.engine.backlog import Backlog
from imgfetch.engine.pipeline import Fetched
from imgfetch.records import Task

SLOW_KEEP_S = 0.2


def slow_image_step() -> None:
    """A worker initializer: every image step takes SLOW_KEEP_S more (as a slow resize would)."""
    keep = worker.keep_fetched

    def slow(*args, **kwargs):
        time.sleep(SLOW_KEEP_S)
        return keep(*args, **kwargs)
    worker.keep_fetched = slow


def crash_in_image_step() -> None:
    """A worker initializer standing in for a decoder that crashes: the image step of a URL with ``crash=keep``
    kills its process, once the backlog behind it has filled (every image step is slow)."""
    keep = worker.keep_fetched

    def crashing(fetched, *args, **kwargs):
        if "crash=keep" in fetched.task.url:
            time.sleep(0.3)
            os._exit(70)
        time.sleep(0.02)
        return keep(fetched, *args, **kwargs)
    worker.keep_fetched = crashing


@pytest.mark.parametrize("start_method", ["fork", "spawn", "forkserver"])
def test_a_crash_in_the_image_step_suspects_only_what_the_worker_was_working_on(server, tmp_path, caplog,
                                                                                 start_method):
    urls = [server.url("/img/0.jpg?crash=keep"), *server.image_urls()[1:40]]
    with caplog.at_level(logging.WARNING, logger="imgfetch"):
        results = download(urls, tmp_path / "o", workers=1, threads=2, start_method=start_method,
                           initializer=crash_in_image_step, **FAST)
    assert results[0].error_kind == "crashed" and len(results.ok) == len(urls) - 1
    served = Counter(r.pid for r in results)
    alone = [r for r in results[1:] if served[r.pid] == 1]  # retried in a quarantine process of its own
    # Suspects are the URLs its 2 threads, their queue of 2 and its 2 keepers may have held; the bodies that
    # never left the backlog (up to 16) are fetched again as usual, not one process each.
    assert len(alone) <= 6, caplog.text
    assert "waiting for the image step as usual" in caplog.text


def test_downloads_go_on_while_the_image_step_lags_behind(fresh_server, tmp_path):
    urls = fresh_server.image_urls()[:12]
    records = iter_download(urls, tmp_path / "o", workers=1, threads=2, start_method="fork",
                            initializer=slow_image_step, **FAST)
    first = next(iter(records))
    seen_at_first = fresh_server.stats.requests
    rest = list(records)
    assert [r.status for r in [first, *rest]] == ["ok"] * 12
    # Two threads holding their URLs through the image step would have fetched at most 2 + 2 (their queue)
    # by the time the first record came back; freed at once, they fetch the whole list in the meantime.
    assert seen_at_first >= 10


def fetched(n: int) -> Fetched:
    return Fetched(Task(f"http://h.test/{n}.jpg", f"{n:032d}", n), None, 0.0, b"x")  # type: ignore[arg-type]


def put_soon(backlog: Backlog, item: Fetched, size: int) -> threading.Thread:
    thread = threading.Thread(target=backlog.put, args=(item, size), daemon=True)
    thread.start()
    thread.join(0.2)
    return thread


def test_the_backlog_makes_a_download_thread_wait_when_it_holds_its_count_or_its_bytes():
    by_count = Backlog(count=2, size=1000)
    by_count.put(fetched(1), 1)
    by_count.put(fetched(2), 1)
    waiting = put_soon(by_count, fetched(3), 1)
    assert waiting.is_alive()  # full: the third waits
    assert by_count.get().task.line == 1  # first in, first out
    waiting.join(1.0)
    assert not waiting.is_alive() and [by_count.get().task.line for _ in range(2)] == [2, 3]

    by_bytes = Backlog(count=100, size=1000)
    by_bytes.put(fetched(1), 600)
    waiting = put_soon(by_bytes, fetched(2), 600)
    assert waiting.is_alive()  # 1200 bytes would be over
    by_bytes.get()
    waiting.join(1.0)
    assert not waiting.is_alive()
    by_bytes.get()
    by_bytes.put(fetched(3), 5000)  # larger than the bound: goes in alone rather than never
    assert put_soon(by_bytes, fetched(4), 1).is_alive()


def test_an_aborting_worker_takes_the_bodies_out_of_the_backlog_but_not_the_keepers_end_signals():
    backlog = Backlog(count=3, size=1000)
    backlog.put(fetched(1), 1)
    backlog.put(fetched(2), 1)
    backlog.put(None, 0)
    waiting = put_soon(backlog, fetched(3), 1)
    assert [f.task.line for f in backlog.take_all()] == [1, 2]
    waiting.join(1.0)
    assert not waiting.is_alive()  # room again
    assert backlog.get() is None and backlog.get().task.line == 3
