"""Connections follow hosts across the pool: a host's URLs go to a worker holding an idle connection
to it, hosts are interleaved by their share of the work, and neither makes a URL wait while a
thread is free. Many host names for one built-in server through tests/fake_dns.py."""
from __future__ import annotations

import random
import time
import uuid
from collections import deque

import fake_dns
from conftest import FAST
from imgfetch import download, iter_download
from imgfetch.engine import politeness
from imgfetch.engine.affinity import Affinity
from imgfetch.engine.politeness import HostScheduler
from imgfetch.records import Task

HOSTS = 30


def zipf_list(server, count: int, hosts: int, seed: int) -> list[str]:
    """``count`` URLs over ``hosts`` names in random order, host k having about 1/k of the top host's."""
    tag, rng = uuid.uuid4().hex[:8], random.Random(seed)
    picks = rng.choices(range(hosts), weights=[1 / (k + 1) for k in range(hosts)], k=count)
    paths = [server.images.path(i) for i in range(server.count)]
    return [f"http://h{k}-{tag}.test:{server.port}{paths[i % len(paths)]}?latency_ms=30&u={i}"
            for i, k in enumerate(picks)]


# Under fork only, as the other scheduling tests here: placing hosts is the parent's work, whatever the start method
# (an initializer under spawn: test_engine.py's test_initializer_runs_once_in_every_worker).
def test_a_list_over_many_hosts_keeps_each_host_on_few_connections(fresh_server, tmp_path):
    urls = zipf_list(fresh_server, 600, HOSTS, seed=1)
    results = download(urls, tmp_path / "o", workers=4, threads=16, start_method="fork",
                       initializer=fake_dns.install, **dict(FAST, timeout=5.0))
    assert [r.status for r in results] == ["ok"] * len(urls)
    # About one per thread (64) and one per host: each host's URLs on the workers holding its connections,
    # a host in flight in proportion to its share. Spread over all four workers in list order, it was 200.
    assert fresh_server.stats.snapshot()["connections"] <= 64 + HOSTS + 40


def test_a_big_host_left_alone_at_the_end_gets_every_thread(fresh_server, tmp_path):
    tag = uuid.uuid4().hex[:8]
    path = fresh_server.images.path
    small = [f"http://s{k}-{tag}.test:{fresh_server.port}{path(k)}?latency_ms=100" for k in range(3)]
    big = [f"http://big-{tag}.test:{fresh_server.port}{path(i % 40)}?latency_ms=100&u={i}" for i in range(64)]
    started = time.monotonic()
    results = download(small + big, tmp_path / "o", workers=2, threads=8, start_method="fork",
                       initializer=fake_dns.install, **dict(FAST, timeout=5.0))
    took = time.monotonic() - started
    assert [r.status for r in results] == ["ok"] * len(results)
    assert fresh_server.stats.max_in_flight == 16  # all of both workers' threads, not a per-host cap
    assert took < 2.5  # 64 URLs of 100 ms on 16 threads: about 0.4 s of downloads (8 at a time: 0.8 s more)


def test_a_slow_host_first_in_the_list_does_not_hold_the_hosts_after_it(fresh_server, tmp_path):
    tag = uuid.uuid4().hex[:8]
    path = fresh_server.images.path
    slow = [f"http://slow-{tag}.test:{fresh_server.port}{path(i)}?latency_ms=1500&u={i}" for i in range(12)]
    fast = [f"http://fast-{tag}.test:{fresh_server.port}{path(i % 40)}?latency_ms=20&u={i}" for i in range(60)]
    downloads = iter_download(slow + fast, tmp_path / "o", workers=2, threads=4, start_method="fork",
                              initializer=fake_dns.install, **dict(FAST, timeout=5.0, max_time=10.0))
    started, fast_done, slow_done = None, [], []
    for record in downloads:
        started = started or time.monotonic()
        assert record.status == "ok"
        (slow_done if "slow-" in record.url else fast_done).append(time.monotonic())
    assert len(fast_done) == 60 and len(slow_done) == 12
    # In list order the slow host's twelve URLs filled both workers (8 threads, 4 queued) for 1.5 s, so every
    # other URL waited for them; now it starts in proportion to its share of the work, and the other host's
    # URLs go to a worker with a thread free, wherever their connections are. (A few may still queue behind a
    # slow URL in a worker whose every thread is busy.)
    assert sum(done < min(slow_done) for done in fast_done) >= 50


class FakeWorker:
    """A worker as the pool's placement sees it."""

    def __init__(self, room: int, threads: int) -> None:
        self.gone, self.held, self.window, self.threads = False, 0, room, threads

    @property
    def room(self) -> int:
        return self.window - self.held

    @property
    def free_threads(self) -> int:
        return max(0, self.threads - self.held)


def placed(affinity: Affinity, task: Task, workers: list[FakeWorker]) -> FakeWorker:
    [(worker, _)] = affinity.place([task], workers)
    worker.held += 1
    return worker


def test_a_url_goes_to_the_worker_with_an_idle_connection_unless_only_another_has_a_thread_free():
    a, b = FakeWorker(room=6, threads=4), FakeWorker(room=6, threads=4)
    affinity: Affinity[FakeWorker] = Affinity(limit=100)
    first = Task("http://h.example.com/0.jpg", "0" * 32, 1)
    home = placed(affinity, first, [a, b])
    other = b if home is a else a
    affinity.done(first, home)
    home.held -= 1
    other.held = 2  # busier, so the emptiest worker would be ``home`` anyway: make it the other way
    home.held = 3
    second = Task("http://h.example.com/1.jpg", "1" * 32, 2)
    assert placed(affinity, second, [a, b]) is home  # to its idle connection, though the other is emptier
    affinity.done(second, home)  # idle again, but every thread of its worker is now busy with other hosts:
    assert home.free_threads == 0 and other.free_threads > 0  # it does not wait behind them
    assert placed(affinity, Task("http://h.example.com/2.jpg", "2" * 32, 3), [a, b]) is other


def test_the_pool_remembers_a_bounded_number_of_hosts():
    workers = [FakeWorker(room=10**9, threads=10**9) for _ in range(4)]
    affinity: Affinity[FakeWorker] = Affinity(limit=1_000)
    for i in range(50_000):  # a list of distinct hosts: state for the most recent only
        task = Task(f"http://h{i}.example.com/{i}.jpg", f"{i:032x}", i)
        affinity.done(task, placed(affinity, task, workers))
    assert len(affinity) == 1_000
    assert max(w.held for w in workers) - min(w.held for w in workers) <= 1  # new hosts spread evenly


def test_a_host_with_few_urls_waits_its_turn_while_a_big_one_has_work():
    tasks = [Task(f"http://big.example.com/{i}", f"{i:032x}", i) for i in range(6)]
    tasks += [Task(f"http://small.example.com/{i}", f"{i + 6:032x}", i + 6) for i in range(2)]
    scheduler = HostScheduler(iter(tasks), per_host=None, rate=None)
    first = scheduler.take(4, [])
    assert [t.url.split("/")[2] for t in first] == ["big.example.com", "small.example.com"] + ["big.example.com"] * 2
    scheduler.release([first[1]])  # the small host's first URL is done: its second goes next, on that connection
    assert [t.url for t in scheduler.take(1, [])] == ["http://small.example.com/1"]


def test_interleaving_50000_distinct_hosts_keeps_bounded_state_and_linear_work(monkeypatch):
    # The list is about 50 look-aheads long, as 200,000 hosts are with the real one (4,096), in a quarter of the time.
    monkeypatch.setattr(politeness, "SOFT_LOOKAHEAD", 1_024)
    hosts = 50_000
    tasks = (Task(f"http://h{i % 37_500}.example.com/{i}.jpg", f"{i:032x}", i) for i in range(hosts))
    scheduler = HostScheduler(tasks, per_host=None, rate=None)
    in_flight: deque[list[Task]] = deque()
    handed, largest = 0, 0
    while (took := scheduler.take(16, [])) is not None:
        handed += len(took)
        in_flight.append(took)
        if len(in_flight) > 8:  # each batch ends eight takes later
            scheduler.release(in_flight.popleft())
        largest = max([largest] + [len(v) for v in vars(scheduler).values() if isinstance(v, (dict, set, list, deque))])
    assert handed == hosts
    assert largest <= 2 * politeness.SOFT_LOOKAHEAD + 1024  # the look-ahead, never the list
    assert scheduler.hosts_examined <= 4 * hosts
