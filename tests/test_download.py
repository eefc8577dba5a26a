"""The real pool against the built-in server, under fork, spawn and forkserver."""
from __future__ import annotations

import hashlib
import os
import stat

import pytest

from conftest import FAST, START_METHODS, assert_clean, read_manifest, tree
from imgfetch import download, iter_download


@pytest.mark.parametrize("start_method", START_METHODS)
def test_images_land_byte_identical(server, tmp_path, start_method):
    urls = server.image_urls()
    out = tmp_path / "out"
    results = download(urls, out, workers=2, threads=8, start_method=start_method, **FAST)
    assert len(results) == len(urls) >= 200
    assert {r.status for r in results} == {"ok"}
    by_line = {r.line: r for r in results}
    for i, url in enumerate(urls):
        record = by_line[i + 1]
        data = (out / record.path).read_bytes()
        assert data == server.image_bytes(i)
        assert record.sha256 == hashlib.sha256(data).hexdigest()
        assert record.bytes == len(data) and record.width > 0 and record.height > 0
        assert record.path.endswith({"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif"}[record.format])
    records = read_manifest(out / "manifest.jsonl")
    assert len(records) == len(urls)
    pids = {r["pid"] for r in records}
    assert len(pids) == 2 and os.getpid() not in pids  # both worker processes did work, the parent none
    assert_clean(out, records)
    assert tree(tmp_path) == {"out"} | {f"out/{p}" for p in tree(out)}


def test_failure_kinds_become_records(server, tmp_path):
    out = tmp_path / "out"
    urls = [
        server.url("/img/0.jpg"),
        server.url("/status/404"),
        server.url("/status/500"),
        server.url("/html-as-jpeg"),
        server.url("/truncated/1.png"),
        server.url("/bomb.png"),
        server.url("/redirect-to?url=file:///etc/passwd"),
        server.url("/redirect-loop"),
        server.url("/empty"),
        "ftp://example.com/a.jpg",
        server.url("/img/0.jpg#again"),
    ]
    results = {r.line: r for r in download(urls, out, workers=2, threads=4, start_method="fork", **FAST)}
    assert results[1].status == "ok"
    assert (results[2].status, results[2].error, results[2].attempts) == ("failed", "HTTP 404 Not Found", 1)
    assert results[3].status == "failed" and results[3].error.startswith("HTTP 500") and results[3].attempts == 2
    assert "not an image" in results[4].error
    assert "corrupt PNG" in results[5].error
    assert "decompression bomb" in results[6].error
    assert "redirect to file: refused" in results[7].error
    assert results[8].error == "redirect loop"
    assert results[9].error.startswith("empty response")
    assert results[10].status == "invalid" and "unsupported scheme" in results[10].error
    assert results[11].status == "duplicate"
    assert_clean(out, read_manifest(out / "manifest.jsonl"))


def test_rerun_skips_what_is_done_and_refetches_what_is_missing(fresh_server, tmp_path):
    out = tmp_path / "out"
    urls = fresh_server.image_urls()[:20]
    first = download(urls, out, workers=1, threads=4, start_method="fork", **FAST)
    assert all(r.status == "ok" for r in first)
    (out / first[0].path).unlink()
    fresh_server.stats.reset()
    second = download(urls, out, workers=1, threads=4, start_method="fork", **FAST)
    assert [r.status for r in second] == ["ok"] * 20
    assert [r.skipped for r in second] == [False] + [True] * 19
    assert fresh_server.stats.requests == 1  # only the missing file went over the wire
    skipped = [r for r in second if r.skipped]
    assert all(r.sha256 and (out / r.path).exists() for r in skipped)
    records = read_manifest(out / "manifest.jsonl")
    assert len(records) == 40  # one record per line per run, appended


def test_iter_download_yields_as_completed(server, tmp_path):
    urls = server.image_urls()[:12]
    seen = []
    for record in iter_download(urls, tmp_path / "o", workers=1, threads=2, start_method="fork", **FAST):
        seen.append(record.line)
    assert sorted(seen) == list(range(1, 13))


def test_foreign_file_is_never_overwritten(server, tmp_path):
    out = tmp_path / "out"
    url = server.image_urls()[0]
    first = download([url], out, workers=1, threads=1, start_method="fork", **FAST)[0]
    (out / "manifest.jsonl").unlink()  # the file is no longer this folder's
    (out / first.path).write_bytes(b"precious")
    again = download([url], out, workers=1, threads=1, start_method="fork", **FAST)[0]
    assert again.status == "failed" and "--overwrite" in again.error
    assert (out / first.path).read_bytes() == b"precious"
    forced = download([url], out, workers=1, threads=1, start_method="fork", overwrite=True, **FAST)[0]
    assert forced.status == "ok" and (out / first.path).read_bytes() == server.image_bytes(0)


@pytest.mark.parametrize("umask, image_mode", [(0o022, 0o644), (0o027, 0o640)])
def test_saved_images_honour_the_umask_and_the_errors_file_stays_private(server, tmp_path, umask, image_mode):
    old = os.umask(umask)
    try:
        out = tmp_path / "out"
        results = download([server.image_urls()[0], server.url("/status/404")], out, workers=1, threads=2,
                           start_method="fork", errors=str(tmp_path / "failed.txt"), **FAST)
    finally:
        os.umask(old)
    ok = next(r for r in results if r.status == "ok")
    assert stat.S_IMODE(os.stat(out / ok.path).st_mode) == image_mode  # readable by others, as curl's files are
    assert stat.S_IMODE(os.stat(out / "manifest.jsonl").st_mode) == image_mode
    assert stat.S_IMODE(os.stat(tmp_path / "failed.txt").st_mode) == 0o600  # full URLs, maybe with credentials


def test_a_run_for_a_command_line_keeps_counts_not_records_and_draws_where_it_is_told(server, tmp_path):
    """What `imgfetch get` asks of download(): no record held in memory, the bar on its own stream."""
    import io

    out, bar = tmp_path / "out", io.StringIO()
    urls = [*server.image_urls()[:3], server.url("/status/404"), "ftp://x/y"]
    options = {**FAST, "progress": True}
    results = download(urls, out, workers=1, threads=2, start_method="fork", keep_records=False, progress_file=bar,
                       **options)
    assert len(results) == 0 and len(read_manifest(out / "manifest.jsonl")) == 5  # every record is in the manifest
    assert results.counts == {"ok": 3, "failed": 1, "invalid": 1, "duplicate": 0}
    assert results.totals.failure_split() == (0, 1) and results.manifest == out / "manifest.jsonl"
    assert "1 × HTTP 404 Not Found" in results.summary() and results.listed == 5
    assert "5/5" in bar.getvalue() and "ok=3 failed=1 invalid=1" in bar.getvalue()
