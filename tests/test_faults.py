"""Servers that misbehave, through the real pool: each gives one failed record with a readable cause."""
from __future__ import annotations

import time

import pytest

from imgfetch import download, fetch
from conftest import assert_clean, read_manifest

QUICK = dict(timeout=0.3, deadline=1.0, retries=0, backoff=0.01, progress=False, workers=2, threads=4,
             start_method="forkserver")


def one(server, tmp_path, path, **kw):
    opts = dict(QUICK)
    opts.update(kw)
    out = tmp_path / "out"
    result = download([server.url(path)], out, **opts)[0]
    assert_clean(out, read_manifest(out / "manifest.jsonl"))
    return result


@pytest.mark.parametrize("path, needle", [
    ("/hang", "timed out: no data for 0.3 s"),
    ("/drip/0.jpg?interval=0.1", "timed out: download took longer than --deadline 1 s"),
    ("/reset", "connection reset"),
    ("/reset-mid/0.jpg", "connection reset"),
    ("/short/0.jpg", "truncated body"),
    ("/huge?size=5000000", "too large: Content-Length 5,000,000 bytes"),
    ("/endless", "too large: body exceeds --max-bytes"),
    ("/gzip-bomb", "too large: body exceeds --max-bytes"),
    ("/corrupt.jpg", "corrupt JPEG"),
])
def test_misbehaving_server(server, tmp_path, path, needle):
    started = time.monotonic()
    result = one(server, tmp_path, path, max_bytes="1M")
    assert result.status == "failed" and needle in result.error, result.error
    assert result.attempts == 1
    assert time.monotonic() - started < 10


def test_retries_count_attempts_and_flaky_then_succeeds(server, tmp_path):
    failed = one(server, tmp_path, "/status/503", retries=2)
    assert failed.attempts == 3 and failed.error == "HTTP 503 Service Unavailable"
    recovered = one(server, tmp_path, "/flaky/2/tok-a/1.png?retry_after=0", retries=3)
    assert recovered.status == "ok" and recovered.attempts == 3


@pytest.mark.parametrize("path", ["/as-text/2.webp", "/gzip/3.gif", "/disposition/0.jpg", "/redirect/3/1.png"])
def test_real_images_accepted_whatever_the_headers_say(server, tmp_path, path):
    result = one(server, tmp_path, path)
    assert result.status == "ok", result.error
    assert "evil" not in result.path and "/" not in result.path


def test_fetch_in_process(server, tmp_path):
    result = fetch(server.image_urls()[5], tmp_path, timeout=0.5)
    assert result.status == "ok" and (tmp_path / result.path).read_bytes() == server.image_bytes(5)
    bad = fetch("javascript:alert(1)", tmp_path)
    assert bad.status == "invalid"
    assert sorted(p.name for p in tmp_path.iterdir()) == [result.path]
