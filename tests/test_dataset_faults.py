"""Datasets through faults: nothing a record says is done is missing from the shards, whether a worker process
dies, takes too long to exit, or the run is left early; and a re-run completes the rest."""
from __future__ import annotations

import io
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

from conftest import FAST, read_manifest, read_tars
from imgfetch import download, iter_download
from imgfetch.records import OK, FetchResult
from imgfetch.server import ImageServer
from imgfetch.store import shardfiles
from imgfetch.store.shardmend import mend_tar
from imgfetch.store.shards import ShardWriter
from imgfetch.store.shardset import ShardSet, open_shards

DATASET = dict(FAST, workers=2, threads=4, start_method="fork", output_format="webdataset", shard_size=1000)


def newest(out: Path) -> dict[str, dict]:
    return {r["url"]: r for r in read_manifest(out / "manifest.jsonl")}


def assert_shards_agree(out: Path) -> dict[str, dict]:
    """Every URL whose newest record says ok has exactly one readable sample, the one it names, and no sample
    lacks an ok record; the shards' parquet rows are the newest records. Returns the newest records."""
    final = newest(out)
    tars = sorted(str(p) for p in out.glob("*.tar"))
    samples = read_tars(tars)
    keys = [s["__key__"] for s in samples]
    assert len(keys) == len(set(keys))
    by_key = {s["__key__"]: s for s in samples}
    ok = {url: r for url, r in final.items() if r["status"] == OK}
    assert set(by_key) == {r["sample"] for r in ok.values()}
    for url, record in ok.items():
        sample = by_key[record["sample"]]
        assert Path(sample["__url__"]).name == record["shard"] and sample["json"]["url"] == url
        (image,) = [value for value in sample.values() if isinstance(value, Image.Image)]  # decoded whole
        assert image.size == (record["width"], record["height"])
    rows = [row for path in sorted(out.glob("*.parquet")) for row in pq.read_table(path).to_pylist()]
    assert sorted((row["url"], row["status"]) for row in rows) == sorted(
        (url, r["status"]) for url, r in final.items() if r.get("shard"))
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    return final


def rerun_completes(server: ImageServer, urls: list[str], out: Path) -> None:
    """A re-run fetches exactly what is not ok yet, and leaves every URL ok in one sample."""
    before = newest(out)
    server.stats.reset()
    results = download(urls, out, **DATASET)
    assert len(results.ok) == len(urls)
    assert server.stats.requests == len(urls) - sum(r["status"] == OK for r in before.values())
    assert len(assert_shards_agree(out)) == len(urls)


def test_a_worker_killed_with_its_shard_open_keeps_every_recorded_sample(tmp_path):
    with ImageServer(count=120, latency_ms=20, latency_spread=1.0, seed=11) as server:
        urls = server.image_urls()
        out = tmp_path / "out"
        records: list[FetchResult] = []
        for record in iter_download(urls, out, **DATASET):
            records.append(record)
            if len(records) == 40:
                os.kill(record.pid, signal.SIGKILL)  # its shard is open, with samples already recorded
        final = assert_shards_agree(out)
        shown = {r.url: r.status for r in records}
        assert {url: r["status"] for url, r in final.items()} == shown  # what the run said is what the shards hold
        assert sum(status == OK for status in shown.values()) == len(urls)  # nothing was lost
        rerun_completes(server, urls, out)


def test_a_worker_slow_to_exit_keeps_its_samples(tmp_path, monkeypatch):
    parent = os.getpid()
    close = shardfiles.RowsFile.close

    def slow_close(self):  # a worker that takes longer than the pool waits (2 s) to close its shard
        if os.getpid() != parent:
            time.sleep(4)
        close(self)

    monkeypatch.setattr(shardfiles.RowsFile, "close", slow_close)  # fork: the workers inherit it
    with ImageServer(count=30, seed=12) as server:
        urls = server.image_urls()
        out = tmp_path / "out"
        results = download(urls, out, **DATASET)
        assert len(results.ok) == len(urls)
        assert len(assert_shards_agree(out)) == len(urls)


def test_leaving_iter_download_early_keeps_the_shards_and_records_in_step(tmp_path):
    with ImageServer(count=200, latency_ms=50, seed=13) as server:
        urls = server.image_urls()
        out = tmp_path / "out"
        seen = 0
        for _record in iter_download(urls, out, **DATASET):
            seen += 1
            if seen == 30:
                break
        final = assert_shards_agree(out)
        assert 30 <= sum(r["status"] == OK for r in final.values()) < len(urls)
        rerun_completes(server, urls, out)


def test_records_a_stop_never_read_are_written_from_the_shards_rows(tmp_path, server):
    """A stop that gave up waiting: the worker closed its shard, but the parent read only some of its records."""
    (tmp_path / "manifest.jsonl").touch()
    shards = open_shards(tmp_path, tmp_path, "webdataset", 100, -1, tmp_path / "manifest.jsonl", None)
    assert isinstance(shards, ShardSet)
    writer = ShardWriter("webdataset", 100, None, tmp_path)
    sent = []
    for i in range(6):
        record = FetchResult(url=server.url(f"/status/404?n={i}"), key=f"{i:032x}", line=i, status="failed",
                             error="HTTP 404 Not Found", error_kind="http", http_status=404)
        writer.add(record, None)
        sent.append(record)
    writer.close()
    with open(tmp_path / "manifest.jsonl", "a", encoding="utf-8") as manifest:
        for record in sent[:2]:  # the parent read two records before it gave up
            offset = manifest.tell()
            manifest.write(json.dumps(record.to_json_dict()) + "\n")
            shards.recorded(record, offset)
    missing = shards.settle()
    assert sorted(r.url for r in missing) == sorted(r.url for r in sent[2:])
    assert all(r.shard == "00000.tar" and r.error == "HTTP 404 Not Found" for r in missing)
    for record in missing:
        shards.recorded(record)
    shards.finish()
    assert shards.placed == 1 and (tmp_path / "00000.tar").exists()


def test_a_parquet_shard_lost_with_its_worker_is_recorded_as_failed_and_refetched(tmp_path):
    options = dict(DATASET, output_format="parquet")
    with ImageServer(count=80, latency_ms=20, seed=14) as server:
        urls = server.image_urls()
        out = tmp_path / "out"
        seen = 0
        for record in iter_download(urls, out, **options):
            seen += 1
            if seen == 30:
                os.kill(record.pid, signal.SIGKILL)

        def ok_in_parquet() -> tuple[dict[str, dict], dict[str, dict]]:
            final = newest(out)
            rows = {row["url"]: row for path in sorted(out.glob("*.parquet")) for row in pq.read_table(path).to_pylist()}
            return final, rows

        final, rows = ok_in_parquet()
        ok = {url for url, r in final.items() if r["status"] == OK}
        assert ok == {url for url, row in rows.items() if row["status"] == OK}  # no ok record without its image
        assert len(ok) < len(urls)  # the dead worker's shard went
        lost = [r for r in final.values() if r["status"] != OK]
        assert lost and all("its shard was lost" in r["error"] for r in lost)
        server.stats.reset()
        assert len(download(urls, out, **options).ok) == len(urls)
        assert server.stats.requests == len(urls) - len(ok)
        final, rows = ok_in_parquet()
        assert all(r["status"] == OK for r in final.values()) and set(rows) == set(urls)
        for url, row in rows.items():
            assert Image.open(io.BytesIO(row["image"])).size == (final[url]["width"], final[url]["height"])


def _crash_on_request() -> None:
    """A test initializer standing in for native code that crashes: a URL with ``crash=now`` kills its process."""
    import requests.adapters

    send = requests.adapters.HTTPAdapter.send

    def crashing_send(self, request, *args, **kwargs):
        if "crash=now" in request.url:
            os._exit(70)
        return send(self, request, *args, **kwargs)

    requests.adapters.HTTPAdapter.send = crashing_send


def test_suspects_retried_in_quarantine_share_one_shard(tmp_path):
    # Pillow's plugins imported now: a process forked while the server's thread imports one would deadlock on it
    Image.init()
    with ImageServer(count=40, latency_ms=30, seed=15) as server:
        urls = [server.url("/img/0.jpg?crash=now"), *server.image_urls()[1:]]
        out = tmp_path / "out"
        results = download(urls, out, initializer=_crash_on_request, **DATASET)
        assert len(results.ok) == len(urls) - 1 and results[0].error_kind == "crashed"
        final = assert_shards_agree(out)
        per_process = Counter(r.pid for r in results)
        quarantined = [r for r in results if r.ok and per_process[r.pid] == 1]  # a process of its own each
        assert len(quarantined) >= 3
        assert len({final[r.url]["shard"] for r in quarantined}) == 1  # their samples share one shard
        assert len(list(out.glob("*.tar"))) <= len(per_process) - len(quarantined)  # no shard of one suspect


def test_a_failure_fetched_again_keeps_one_row_per_url(tmp_path):
    """Flaky URLs fail the first run and succeed in the second; 503s fail both: each URL keeps one row, in the
    shard of the run that fetched it last, and the earlier shard's stats count only what it still holds."""
    with ImageServer(count=40, seed=16) as server:
        images = server.image_urls()
        for output_format in ("webdataset", "parquet"):
            urls = [*images[:30], *(server.url(f"/flaky/1/{output_format}{i}/{Path(images[i]).name}") for i in range(5)),
                    *(server.url(f"/status/503?n={i}") for i in range(3))]
            out = tmp_path / output_format
            options = dict(DATASET, output_format=output_format, retries=0)
            first = download(urls, out, **options)
            assert len(first.failed) == 8
            second = download(urls, out, **options)
            assert len(second.ok) == 35 and len(second.failed) == 3
            final = newest(out) if output_format == "parquet" else assert_shards_agree(out)
            rows = [row for path in sorted(out.glob("*.parquet")) for row in pq.read_table(path).to_pylist()]
            assert sorted(row["url"] for row in rows) == sorted(urls)  # one row per URL
            assert all(row["status"] == final[row["url"]]["status"] for row in rows)
            if output_format == "parquet":
                assert all(Image.open(io.BytesIO(row["image"])).size == (row["width"], row["height"])
                           for row in rows if row["status"] == OK)
            stats = [json.loads(path.read_text()) for path in out.glob("*_stats.json")]
            assert sum(s["count"] for s in stats) == len(urls) and sum(s["failed"] for s in stats) == 3


def test_mending_a_tar_keeps_only_recorded_samples_even_between_others(tmp_path):
    """A sample appended to the shared shard by a process that died before its record left sits between
    recorded ones: the mended tar holds the recorded samples only, whole, and readable."""
    pictures = {}
    tar = shardfiles.TarFile(str(tmp_path / "00007.tar.tmp"))
    for key in ("0000700", "0000701", "0000702"):
        buffer = io.BytesIO()
        Image.new("RGB", (5 + int(key[-1]), 4), "red").save(buffer, "PNG")
        pictures[key] = buffer.getvalue()
        tar.add(key + ".png", pictures[key], 0)
        tar.add(key + ".json", json.dumps({"url": key}).encode(), 0)
    tar.handle.write(b"cut short by a kill")
    tar.handle.close()
    assert mend_tar(str(tmp_path / "00007.tar.tmp"), {"0000700", "0000702", "0000799"}) == {"0000700", "0000702"}
    (tmp_path / "00007.tar.tmp").rename(tmp_path / "00007.tar")
    samples = read_tars(str(tmp_path / "00007.tar"), decode=False)
    assert [(s["__key__"], s["png"]) for s in samples] == [(k, pictures[k]) for k in ("0000700", "0000702")]
