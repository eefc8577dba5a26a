"""--max-time: one cap on everything a URL may take, whatever the server does."""
from __future__ import annotations

import socket
import threading
import time
import uuid

import pytest

import fake_dns
from imgfetch import Options, download, fetch
from imgfetch.net.fetcher import CANCELLED_ERROR, Fetcher
from imgfetch.net.watchdog import Watchdog

# A per-read timeout far longer than the cap: only --max-time can end these in time.
CAP = dict(timeout=5.0, max_time=1.0, retries=3, backoff=0.05)


@pytest.mark.parametrize("path", [
    "/hang?seconds=5",                      # never answers
    "/drip/0.jpg?interval=0.1",             # a byte every 0.1 s: no read ever times out
    "/slow-head/0.jpg?interval=0.05",       # the response head itself drips
])
def test_a_straggler_is_cut_at_the_cap(server, tmp_path, path):
    started = time.monotonic()
    result = fetch(server.url(path), tmp_path, **CAP)
    took = time.monotonic() - started
    assert result.status == "failed"
    assert result.error == "timed out: download took longer than --max-time 1 s"
    assert 0.9 < took < 1.6
    assert list(tmp_path.iterdir()) == []  # no partial file


def test_a_retry_after_longer_than_the_budget_fails_at_once(server, tmp_path):
    started = time.monotonic()
    result = fetch(server.url("/status/503?retry_after=10"), tmp_path, timeout=1.0, max_time=3.0, retries=3)
    assert time.monotonic() - started < 0.8
    assert result.attempts == 1
    assert result.error == ("HTTP 503 Service Unavailable; Retry-After 10 s is longer than the "
                            f"{result.error.split('the ')[1].split(' s left')[0]} s left of --max-time 3 s")


def test_a_retry_that_cannot_fit_is_not_started(server, tmp_path):
    started = time.monotonic()
    result = fetch(server.url("/status/500"), tmp_path, timeout=0.5, max_time=0.6, retries=5, backoff=0.4)
    assert time.monotonic() - started < 0.5
    assert result.attempts == 1
    assert result.error == "HTTP 500 Internal Server Error; gave up after 1 attempt: no time left in --max-time 0.6 s"


def test_retries_happen_within_the_budget(server, tmp_path):
    started = time.monotonic()
    result = fetch(server.url("/hang?seconds=5"), tmp_path, timeout=0.3, max_time=1.5, retries=10, backoff=0.01)
    took = time.monotonic() - started
    assert result.status == "failed" and result.attempts >= 3  # several 0.3 s attempts ...
    assert took < 1.9  # ... and never past the cap


def test_hangs_in_a_list_end_within_the_cap_through_the_pool(server, tmp_path):
    urls = [server.url(f"/hang?seconds=5&n={i}") for i in range(6)] + server.image_urls()[:20]
    started = time.monotonic()
    results = download(urls, tmp_path / "o", workers=2, threads=8, start_method="forkserver", progress=False, **CAP)
    assert time.monotonic() - started < 3.5
    assert sum(r.status == "ok" for r in results) == 20
    assert all("--max-time 1 s" in r.error for r in results if r.status != "ok")


def test_a_body_without_a_length_is_cut_at_the_cap(server, tmp_path):
    # Connection: close and no Content-Length: http.client hands the socket to the response, and the body
    # ends only when the server closes. A byte a second: only the watchdog can end it at 1.2 s.
    started = time.monotonic()
    result = fetch(server.url("/drip/0.jpg?interval=1&close=1"), tmp_path, timeout=5.0, max_time=1.2, retries=0)
    took = time.monotonic() - started
    assert result.error == "timed out: download took longer than --max-time 1.2 s"
    assert 1.1 < took < 1.5


def test_a_stop_cuts_a_body_without_a_length_at_once(server):
    stop = threading.Event()
    fetcher = Fetcher(Options(timeout=5.0, max_time=10.0, retries=0), stop)
    done: list = []
    thread = threading.Thread(target=lambda: done.append(fetcher.fetch(server.url("/drip/1.png?interval=2&close=1"))))
    started = time.monotonic()
    thread.start()
    time.sleep(0.3)
    stop.set()
    thread.join(5)
    assert time.monotonic() - started < 0.7  # not at the next byte, 2 s in
    assert done[0].error == CANCELLED_ERROR and done[0].body is None


def test_a_redirect_to_a_dead_host_never_cuts_another_threads_download(server, monkeypatch):
    # Thread A follows a redirect from the server to a host whose lookup hangs; the connection of its first
    # hop went back to the pool, and thread B, busy with a slow answer, has taken it. A's deadline passes.
    monkeypatch.setattr(socket, "getaddrinfo", fake_dns.getaddrinfo)
    fetcher = Fetcher(Options(timeout=5.0, max_time=0.6, retries=0, threads=4))
    hop = server.url(f"/redirect-to?url=http://never-{uuid.uuid4().hex[:8]}.test/a.jpg")
    results: dict[str, object] = {}
    a = threading.Thread(target=lambda: results.update(a=fetcher.fetch(hop)))
    a.start()
    deadline = time.monotonic() + 2
    while not any(name.startswith("never-") for name in fake_dns.LOOKED_UP) and time.monotonic() < deadline:
        time.sleep(0.01)  # A is on its second hop now, its first connection idle in the pool
    slow = Fetcher(Options(timeout=5.0, max_time=5.0, retries=0, threads=4))  # B: a budget of its own ...
    slow.adapter = fetcher.adapter  # ... but A's pool, so the connection A let go of
    b = threading.Thread(target=lambda: results.update(b=slow.fetch(server.url("/img/0.jpg?latency_ms=900"))))
    b.start()
    a.join(5)
    b.join(5)
    assert results["b"].error is None and results["b"].body == server.image_bytes(0)
    assert results["a"].error_kind == "dns"


class OnceSlow:
    """Its first connection gets no answer; every later one gets ``body`` (loopback, bounded)."""

    def __init__(self, body: bytes) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)  # a closed listener does not wake accept(): it looks at `done` this often
        self.port = self.listener.getsockname()[1]
        self.answer = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        held: list[socket.socket] = []
        n = 0
        while n < 4 and not self.done.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            conn.settimeout(None)  # blocking, as before: the short timeout is the listener's, for `done`
            held.append(conn)
            if n:
                conn.recv(65536)
                time.sleep(0.1)  # the client waits for the answer, as it mostly does
                conn.sendall(self.answer)
            n += 1
        for conn in held:
            conn.close()

    def __enter__(self) -> "OnceSlow":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(6)
        self.listener.close()


def test_a_retry_after_a_deadline_gets_a_deadline_of_its_own(server, tmp_path, monkeypatch):
    # The watchdog may tick at any moment; here it ticks right after each arm. A retry armed with the
    # attempt before's deadline (already past) would be cut before it starts.
    arm = Watchdog.arm

    def arm_then_tick(self, deadline, stop=None):
        entry = arm(self, deadline, stop)
        if entry.due(time.monotonic()):
            entry.fire()
        return entry

    monkeypatch.setattr(Watchdog, "arm", arm_then_tick)
    with OnceSlow(server.image_bytes(0)) as slow:
        result = fetch(f"http://127.0.0.1:{slow.port}/0.jpg", tmp_path, timeout=5.0, deadline=0.4, max_time=5.0,
                       retries=1, backoff=0.01)
    assert (result.status, result.attempts) == ("ok", 2)
