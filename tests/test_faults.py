"""Servers that misbehave, through the real pool: each gives one failed record with a readable cause."""
from __future__ import annotations

import time

import pytest

from conftest import assert_clean, read_manifest, tree
from imgfetch import download, fetch

QUICK = dict(timeout=0.3, deadline=1.0, retries=0, backoff=0.01, progress=False, workers=2, threads=4,
             start_method="forkserver")


def one(server, tmp_path, path, **kw):
    opts = dict(QUICK)
    opts.update(kw)
    out = tmp_path / "out"
    result = download([server.url(path)], out, **opts)[0]
    assert_clean(out, read_manifest(out / "manifest.jsonl"))
    assert tree(tmp_path) == {"out"} | {f"out/{p}" for p in tree(out)}  # nothing outside OUT
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


def test_429_retry_after_is_honoured_then_succeeds(server, tmp_path):
    result = one(server, tmp_path, "/flaky/1/tok-429/4.jpg?status=429&retry_after=0", retries=1)
    assert result.status == "ok" and result.attempts == 2


def test_redirect_chain_within_and_beyond_the_limit(server, tmp_path):
    ok = one(server, tmp_path, "/redirect/10/1.png", max_redirects=10)
    assert ok.status == "ok" and ok.final_url.endswith("/img/1.png")
    (tmp_path / "out").joinpath("manifest.jsonl").unlink()
    for path in list((tmp_path / "out").iterdir()):
        path.unlink()
    too_many = one(server, tmp_path, "/redirect/11/1.png", max_redirects=10)
    assert too_many.status == "failed" and "too many redirects" in too_many.error


def test_connection_refused_is_retried(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    result = download([f"http://127.0.0.1:{port}/a.jpg"], out, **{**QUICK, "retries": 2})[0]
    assert result.status == "failed" and result.error == "connection refused" and result.attempts == 3


@pytest.mark.parametrize("name", [
    "..%2F..%2Fetc%2Fpasswd.jpg", "x/y/%2e%2e/%2e%2e/..evil.jpg", "a%00b.jpg", "tab%09and%0anewline.jpg",
    "%E2%80%AEgpj.exe", "CON", "nul.txt", "x" * 300 + ".jpg", "%C3%BCber%20caf%C3%A9.jpg",
])
def test_hostile_url_paths_give_safe_names_inside_out(server, tmp_path, name):
    result = one(server, tmp_path, "/names/" + name)
    assert result.status == "ok"
    assert "/" not in result.path and len(result.path) <= 100
    assert result.path.isascii() and result.path.isprintable() and not result.path.startswith(".")
    stem = result.path.rsplit(".", 1)[0].split("-")[0].split(".")[0].upper()
    assert stem not in {"CON", "NUL", "PRN", "AUX"} and result.path.endswith(".jpg")


def test_bad_options_raise_value_error_from_the_library(server, tmp_path):
    for bad, needle in ((dict(workers=0), "^workers must be a whole number >= 1"), (dict(timeout=-1), "^timeout must"),
                        (dict(start_method="thread"), "^start_method must be one of"),
                        (dict(formats="psd"), "^formats: unknown format PSD")):
        with pytest.raises(ValueError, match=needle):  # the library's words, not the CLI's flags
            download(server.image_urls()[:1], tmp_path / "out", **bad)
    with pytest.raises(TypeError, match="wrokers"):
        download(server.image_urls()[:1], tmp_path / "out", wrokers=2)
    assert not (tmp_path / "out").exists()
