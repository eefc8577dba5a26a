"""The concurrency governor, with the machine's CPU ticks injected."""
from __future__ import annotations

import pytest

from imgfetch import governor
from imgfetch.governor import Governor


@pytest.fixture
def ticks(monkeypatch):
    """A fake /proc/stat: each call advances 100 jiffies, of which `idle` share were idle."""
    state = {"idle": 0.0, "total": 0, "idle_total": 0}

    def fake() -> tuple[int, int]:
        state["total"] += 100
        state["idle_total"] += round(100 * state["idle"])
        return state["idle_total"], state["total"]

    monkeypatch.setattr(governor, "_cpu_ticks", fake)
    monkeypatch.setattr(governor, "PERIOD_S", 0.0)
    return state


def test_latency_bound_downloads_grow_the_limit_to_every_thread(ticks):
    gov = Governor(workers=4, threads=128)
    assert gov.limit == 16
    ticks["idle"] = 0.5  # the CPUs wait: downloads wait on the network
    for _ in range(20):
        gov.tick(busy=gov.limit)
    assert gov.limit == 4 * 128


def test_idle_cpus_do_not_grow_a_limit_that_is_not_reached(ticks):
    gov = Governor(workers=4, threads=128)
    ticks["idle"] = 0.5
    for _ in range(20):
        gov.tick(busy=3)  # the list has only three URLs left
    assert gov.limit == 16


def test_saturated_cpus_shrink_the_limit_to_two_per_worker(ticks):
    gov = Governor(workers=4, threads=128)
    ticks["idle"] = 0.5
    for _ in range(20):
        gov.tick(busy=gov.limit)
    ticks["idle"] = 0.0  # every CPU busy: more threads only add lock hand-offs
    for _ in range(40):
        gov.tick(busy=gov.limit)
    assert gov.limit == 8 and gov.per_worker(4) == 2


def test_a_little_idle_time_holds_the_limit(ticks):
    gov = Governor(workers=2, threads=64)
    ticks["idle"] = 0.05
    for _ in range(10):
        gov.tick(busy=gov.limit)
    assert gov.limit == 8


def test_fixed_threads_or_no_proc_stat_keep_every_thread(monkeypatch):
    assert Governor(workers=3, threads=50, adaptive=False).limit == 150
    monkeypatch.setattr(governor, "_cpu_ticks", lambda: None)
    gov = Governor(workers=3, threads=50)
    gov.tick(busy=0)
    assert gov.limit == 150 and not gov.due()


def test_downloads_past_two_seconds_stop_counting_so_hangs_cannot_starve_the_list(ticks, server, tmp_path):
    """Saturated CPUs hold the limit at 2 downloads per worker; two hangs take both slots, yet the
    fast URLs go on once the hangs have run 2 s, long before the hangs end."""
    import time

    from imgfetch import iter_download

    ticks["idle"] = 0.0
    hangs = [server.url(f"/hang?seconds=4&n={i}") for i in range(2)]
    fast = [u + "?latency_ms=50" for u in server.image_urls()[:30]]
    started = time.monotonic()
    seen = [(time.monotonic() - started, r) for r in iter_download(
        [*hangs, *fast], tmp_path / "o", workers=1, threads=8, start_method="fork", progress=False,
        timeout=10, max_time=20, retries=0)]
    assert [r.line for _, r in seen[-2:]] == [1, 2] or [r.line for _, r in seen[-2:]] == [2, 1]
    fast_done = max(t for t, r in seen if r.line > 2)
    assert all(r.status == "ok" for _, r in seen if r.line > 2)
    assert 1.9 < fast_done < 3.8  # waited for the hangs to become stragglers, not for them to end
