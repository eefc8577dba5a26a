"""The manifest stays one record per URL: compaction, skipped records with their facts, read_manifest."""
from __future__ import annotations

import hashlib
import json
import os
import random
import tracemalloc

import pytest

import imgfetch
from conftest import FAST, assert_clean, read_manifest
from imgfetch import download
from imgfetch.store.manifest import compact

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


def test_compaction_keeps_the_newest_record_per_url_in_input_order_across_sorted_runs(tmp_path, monkeypatch):
    """Compaction sorts in chunks and merges them: with chunks of 7 records the output is still
    the newest record per URL (per line for duplicates), by line, file order among equal lines."""
    from imgfetch.store import reading

    monkeypatch.setattr(reading, "SORT_CHUNK", 7, raising=False)
    rng = random.Random(5)
    keys = [f"{i:032x}" for i in range(60)]
    rows = []
    for run in range(4):
        lines = rng.sample(range(1, 61), 45)  # a run finishes a subset, out of order
        rows += [dict(key=keys[line - 1], line=line, status=rng.choice(["ok", "failed"]), run=run) for line in lines]
        rows += [dict(key=keys[line - 61], line=line, status="duplicate", run=run) for line in (61, 62, 63)]
        rows += [dict(key=f"{900 + run:032x}", line=None, status="ok", run=run),  # from fetch(): no line, last
                 dict(key=f"{800 + run % 2:032x}", line=30, status="ok", run=run)]  # another list's line 30
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    newest = {}
    for index, row in enumerate(rows):
        group = (row["key"], row["line"]) if row["status"] == "duplicate" else row["key"]
        newest[group] = (index, row)
    expected = [row for index, row in sorted(newest.values(), key=lambda item: (
        item[1]["line"] if item[1]["line"] is not None else float("inf"), item[0]))]
    assert compact(path) == (len(rows), len(expected))
    assert read_manifest(path) == expected
    assert [r["line"] for r in expected][:3] == [1, 2, 3] and expected[-1]["line"] is None


def test_compaction_holds_few_bytes_a_record_beyond_its_table_of_urls(tmp_path):
    """4M-line manifests must compact in little memory: beyond the KeyMap of URLs (which a
    KeyMap of the same URLs shows alone), at most 24 bytes a record, not Python lists of ints."""
    from imgfetch.store.keys import KeyMap

    records, urls = 60_000, 30_000
    keys = [hashlib.md5(str(line).encode()).hexdigest() for line in range(urls + 1)]  # url keys are hashes
    path = tmp_path / "manifest.jsonl"
    with open(path, "w") as handle:
        for i in range(records):
            line = (i * 7919) % urls + 1  # every URL twice, out of order
            handle.write(json.dumps(dict(key=keys[line], line=line, status="ok", path=f"{line}.jpg")) + "\n")
    tracemalloc.start()
    table = KeyMap()
    for line in range(1, urls + 1):
        table[bytes.fromhex(keys[line])] = line
    table_peak = tracemalloc.get_traced_memory()[1]
    del table
    tracemalloc.reset_peak()
    try:
        assert compact(path) == (records, urls)
        compact_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (compact_peak - table_peak) / records <= 24
    assert [r["line"] for r in read_manifest(path)] == list(range(1, urls + 1))
