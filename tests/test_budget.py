"""--max-time: one cap on everything a URL may take, whatever the server does."""
from __future__ import annotations

import time

import pytest

from imgfetch import download, fetch

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
