"""A worker's download threads do not wait for the image step: each hands its body to the backlog
(engine/worker.py) and starts its next download, so a list's last, slow URLs start while images are
still being resized; the backlog is bounded, in bodies and in bytes."""
from __future__ import annotations

import threading
import time

from conftest import FAST
from imgfetch import iter_download
from imgfetch.engine import worker
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


def put_soon(backlog: worker.Backlog, item: Fetched, size: int) -> threading.Thread:
    thread = threading.Thread(target=backlog.put, args=(item, size), daemon=True)
    thread.start()
    thread.join(0.2)
    return thread


def test_the_backlog_makes_a_download_thread_wait_when_it_holds_its_count_or_its_bytes():
    by_count = worker.Backlog(count=2, size=1000)
    by_count.put(fetched(1), 1)
    by_count.put(fetched(2), 1)
    waiting = put_soon(by_count, fetched(3), 1)
    assert waiting.is_alive()  # full: the third waits
    assert by_count.get().task.line == 1  # first in, first out
    waiting.join(1.0)
    assert not waiting.is_alive() and [by_count.get().task.line for _ in range(2)] == [2, 3]

    by_bytes = worker.Backlog(count=100, size=1000)
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
    backlog = worker.Backlog(count=3, size=1000)
    backlog.put(fetched(1), 1)
    backlog.put(fetched(2), 1)
    backlog.put(None, 0)
    waiting = put_soon(backlog, fetched(3), 1)
    assert [f.task.line for f in backlog.take_all()] == [1, 2]
    waiting.join(1.0)
    assert not waiting.is_alive()  # room again
    assert backlog.get() is None and backlog.get().task.line == 3
