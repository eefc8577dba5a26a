"""--per-host and --rate, proven by what the built-in server saw."""
from __future__ import annotations

import time
from collections import deque

from imgfetch import download
from imgfetch.engine.politeness import HostScheduler
from imgfetch.records import FetchResult, Task
from imgfetch.server import ImageServer


def test_per_host_cap_holds_across_workers_and_threads(tmp_path):
    with ImageServer(count=40, latency_ms=60) as server:
        results = download(server.image_urls(), tmp_path / "o", workers=2, threads=8, per_host=3,
                           start_method="fork", progress=False)
        assert all(r.status == "ok" for r in results)
        assert server.stats.max_in_flight == 3  # used fully, never exceeded
        server.stats.reset()
        download(server.image_urls(), tmp_path / "p", workers=2, threads=8, start_method="fork", progress=False)
        assert server.stats.max_in_flight > 3  # without the cap the same run goes wider


def test_rate_limit_spaces_starts(tmp_path):
    with ImageServer(count=11) as server:
        started = time.monotonic()
        results = download(server.image_urls(), tmp_path / "o", workers=1, threads=4, rate=20,
                           start_method="fork", progress=False)
        assert all(r.status == "ok" for r in results)
        assert 0.5 <= time.monotonic() - started < 3.0  # 11 starts at 20/s need 10 intervals of 50 ms


def test_hosts_are_interleaved_and_ready_records_pass_through():
    tasks = [Task(f"http://a.example.com/{i}", f"{i:032x}", i) for i in range(5)]
    tasks += [Task(f"http://b.example.com/{i}", f"{i + 5:032x}", i + 5) for i in range(2)]
    ready = FetchResult(url="x", key="0" * 32, line=99, status="invalid")
    scheduler = HostScheduler(iter([*tasks[:3], ready, *tasks[3:]]), per_host=2, rate=None)
    passthrough: list[FetchResult] = []
    first = scheduler.take(10, passthrough)
    assert [t.url.split("/")[2] for t in first] == ["a.example.com", "b.example.com", "a.example.com", "b.example.com"]
    assert passthrough == [ready]
    assert scheduler.take(10, passthrough) == []  # both hosts at their cap
    scheduler.release([first[0]])
    assert [t.url for t in scheduler.take(10, passthrough)] == ["http://a.example.com/2"]


def test_a_mostly_done_list_never_buffers_more_than_a_bounded_number_of_ready_records():
    from imgfetch.engine.politeness import PASSTHROUGH_MAX

    ready = (FetchResult(url="x", key=f"{i:032x}", line=i, status="skipped") for i in range(200_000))
    scheduler = HostScheduler(ready, per_host=2, rate=None)
    passthrough: list[FetchResult] = []
    handed = 0
    while True:
        took = scheduler.take(10, passthrough)
        assert len(passthrough) <= PASSTHROUGH_MAX  # 200,000 ready records, never more than this held
        handed += len(passthrough)
        passthrough.clear()
        if took is None:
            break
    assert handed == 200_000


def test_the_pool_waits_for_a_rate_limited_host_only_while_one_waits():
    """The wait hint is how long the parent sleeps between polls: short only when a start is due soon."""
    from imgfetch.engine.politeness import WAIT_HINT_S

    tasks = [Task(f"http://a.example.com/{i}", f"{i:032x}", i) for i in range(2)]
    scheduler = HostScheduler(iter(tasks), per_host=None, rate=10)  # one start per 0.1 s
    passthrough: list[FetchResult] = []
    assert len(scheduler.take(10, passthrough)) == 1
    assert scheduler.wait_hint() <= 0.1  # the second URL may start within 0.1 s: wake up for it
    time.sleep(0.12)
    assert len(scheduler.take(10, passthrough)) == 1
    assert scheduler.wait_hint() == WAIT_HINT_S  # nothing left to start: no busy polling while downloads finish


class FakeTime:
    """A clock the test moves by hand, so --rate can be checked without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_rate_on_50000_distinct_hosts_keeps_bounded_state_and_linear_work(monkeypatch):
    """Downloads far shorter than 1/R used to leave an entry per host forever, and every take and
    wait hint scanned every buffered host. Now per-host state is for hosts in play only."""
    from imgfetch.engine import politeness

    clock = FakeTime()
    monkeypatch.setattr(politeness, "time", clock)
    # The list is ten look-aheads long, as 200,000 hosts are with the real one (20,000), in a quarter of the time.
    monkeypatch.setattr(politeness, "LOOKAHEAD", 5_000)
    hosts, busy_every, per_take, step = 50_000, 250, 16, 0.01  # a take every 10 ms of fake time
    tasks = (Task(f"http://{'busy' if i % busy_every == 0 else f'h{i}'}.example.com/{i}.jpg", f"{i:032x}", i)
             for i in range(hosts))
    scheduler = HostScheduler(tasks, per_host=2, rate=10)  # a host starts at most every 0.1 s
    window = per_take * round(0.1 / step + 1)  # starts within one interval: the hosts still cooling
    passthrough: list[FetchResult] = []
    handed, busy_starts, largest = 0, [], 0
    while (took := scheduler.take(per_take, passthrough)) is not None:
        handed += len(took)
        busy_starts += [clock.now for t in took if t.url.startswith("http://busy.")]
        scheduler.release(took)  # each download ends at once
        scheduler.wait_hint()
        largest = max([largest] + [len(v) for v in vars(scheduler).values() if isinstance(v, (dict, set, list, deque))])
        assert len(scheduler.next_start) <= window + 1  # not one per host ever seen
        clock.now += step
    assert handed == hosts
    assert all(b - a >= 0.1 - 1e-9 for a, b in zip(busy_starts, busy_starts[1:]))  # --rate still exact
    assert len(busy_starts) == hosts // busy_every
    assert largest <= politeness.LOOKAHEAD + window  # every per-host structure: the lookahead at most
    assert scheduler.hosts_examined <= 4 * hosts  # linear: not (tasks x buffered hosts)
