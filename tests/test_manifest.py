"""The manifest stays one record per URL: compaction, skipped records with their facts, read_manifest."""
from __future__ import annotations

import json
import os

import pytest

import imgfetch
from imgfetch import download
from imgfetch.store.manifest import compact
from conftest import FAST, assert_clean, read_manifest

RUN = dict(workers=1, threads=4, start_method="fork", **FAST)


def lines_of(path):
    return path.read_text(encoding="utf-8").splitlines()


def test_reruns_compact_to_one_record_per_url_in_input_order(fresh_server, tmp_path):
    out = tmp_path / "out"
    urls = fresh_server.image_urls()[:12] + [fresh_server.url("/status/404"), "not a url", fresh_server.image_urls()[0]]
    for _ in range(2):
        download(urls, out, **RUN)
    # appended while it is at most twice the URLs; the 404, not retried, is not written again
    assert len(lines_of(out / "manifest.jsonl")) == 29
    download(urls, out, **RUN)
    records = read_manifest(out / "manifest.jsonl")
    assert [r["line"] for r in records] == list(range(1, 16))  # compacted: one per line, in input order
    assert [r["status"] for r in records] == ["ok"] * 12 + ["failed", "invalid", "duplicate"]
    assert [r["skipped"] for r in records] == [True] * 12 + [False] * 3
    assert_clean(out, records)  # no temporary file left beside it
    for _ in range(5):  # it never grows past about twice the URL count
        download(urls, out, **RUN)
        assert len(lines_of(out / "manifest.jsonl")) <= 2 * len(urls)
    fresh_server.stats.reset()
    again = download(urls, out, **RUN)  # and resuming from a compacted manifest still works
    assert [(r.status, r.skipped) for r in again][:13] == [("ok", True)] * 12 + [("failed", True)]
    assert fresh_server.stats.requests == 0  # not even the 404: it is permanent


def test_a_skipped_record_carries_the_facts_of_the_ok_record(fresh_server, tmp_path):
    out = tmp_path / "out"
    [ok] = download(fresh_server.image_urls()[:1], out, **RUN)
    [skipped] = download(fresh_server.image_urls()[:1], out, **RUN)
    assert (skipped.status, skipped.skipped, ok.skipped) == ("ok", True, False)
    for name in ("path", "bytes", "sha256", "format", "width", "height", "http_status", "final_url", "fetched_at"):
        assert getattr(skipped, name) == getattr(ok, name) is not None, name
    assert read_manifest(out / "manifest.jsonl")[-1]["format"] == ok.format


def test_read_manifest_gives_the_newest_record_per_url_in_input_order(fresh_server, tmp_path):
    out = tmp_path / "out"
    good, bad = fresh_server.image_urls()[:3], fresh_server.url("/status/404")
    download([*good, bad], out, **RUN)
    download([bad, *good], out, **RUN)  # the same URLs, another order: newest wins, in the newest order
    records = imgfetch.read_manifest(out)  # a folder means its manifest.jsonl
    assert [(r["line"], r["status"]) for r in records] == [(1, "failed"), (2, "ok"), (3, "ok"), (4, "ok")]
    assert imgfetch.read_manifest(out / "manifest.jsonl") == records
    with pytest.raises(imgfetch.OutputError, match="no such manifest"):
        imgfetch.read_manifest(tmp_path / "nowhere")


def test_compact_keeps_duplicates_per_line_and_drops_a_torn_last_line(tmp_path):
    path = tmp_path / "manifest.jsonl"
    key_a, key_b = "a" * 32, "b" * 32
    rows = [dict(key=key_a, line=1, status="failed"), dict(key=key_b, line=2, status="ok", path="b.jpg"),
            dict(key=key_a, line=3, status="duplicate"), dict(key=key_a, line=1, status="ok", path="a.jpg"),
            dict(key=key_a, line=3, status="duplicate")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"key": "torn', encoding="utf-8")
    os.chmod(path, 0o640)
    assert compact(path) == (5, 3)
    assert [(r["line"], r["status"]) for r in read_manifest(path)] == [(1, "ok"), (2, "ok"), (3, "duplicate")]
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_a_crash_while_compacting_leaves_the_old_manifest_whole(tmp_path, monkeypatch):
    path = tmp_path / "manifest.jsonl"
    rows = [dict(key="a" * 32, line=1, status="failed"), dict(key="a" * 32, line=1, status="failed")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    before = path.read_bytes()

    def power_cut(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", power_cut)
    with pytest.raises(OSError):
        compact(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["manifest.jsonl"]
