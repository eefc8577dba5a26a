"""--executor dask as shards: a real `dask scheduler` and two `dask worker` processes on loopback, each shard a
Dask task that downloads and writes its own outputs; read back record by record, a worker killed mid-shard,
resume and stop."""
from __future__ import annotations

import glob
import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import distributed  # noqa: F401 - in the test extra: these tests run wherever the tests do, never skip
import pytest

from conftest import read_tars, tree, wait_for
from daskcluster import kill_a_worker_mid_run, start_cli
from imgfetch import read_manifest
from imgfetch.cli import main
from imgfetch.server import ImageServer


def get(cluster, urls_file, out, *args: str) -> list[str]:
    return ["get", str(urls_file), "-o", str(out), "--executor", "dask", "--scheduler", cluster,
            "--timeout", "2", "--retries", "0", *args]


def write_list(path, urls) -> None:
    path.write_text("\n".join(urls) + "\n")


def lines_by_key(out) -> dict[str, int]:
    """How many readable lines each URL key has across the manifest parts."""
    counts: dict[str, int] = {}
    for part in glob.glob(str(out / "manifest.parts" / "*.jsonl")):
        for line in Path(part).read_text(encoding="utf-8").splitlines():
            try:
                key = json.loads(line)["key"]
            except ValueError:
                continue  # a line a kill cut short
            counts[key] = counts.get(key, 0) + 1
    return counts


def test_files_as_shards_through_the_cli(cluster, tmp_path, capsys):
    with ImageServer(count=60, seed=5, latency_ms=5) as srv:
        urls = srv.image_urls()
        write_list(tmp_path / "urls.txt", urls[:30] + [srv.url("/status/404"), "not a url"] + urls[30:])
        out = tmp_path / "out"
        code = main(get(cluster, tmp_path / "urls.txt", out, "--shard-size", "10", "--threads", "3"))
        err = capsys.readouterr().err
        assert code == 1, err
        assert "ok 60, failed 1, invalid 1, duplicate 0" in err
        assert f"manifest: {out / 'manifest.parts'}" in err
        records = read_manifest(out)
        assert [r["line"] for r in records] == list(range(1, 63))  # one record per line, as one table
        for record in records:
            if record["status"] == "ok":
                assert (out / record["path"]).read_bytes() == srv.image_bytes(urls.index(record["url"]))
        assert {r["status"] for r in records if r["line"] in (31, 32)} == {"failed", "invalid"}
        assert len({r["pid"] for r in records if r["pid"]}) == 2  # both Dask worker processes did shards
        assert os.getpid() not in {r["pid"] for r in records}
        names = sorted(os.listdir(out / "manifest.parts"))
        assert names == [f"{n:05d}{s}" for n in range(7) for s in (".jsonl", "_stats.json")]
        for number in range(7):  # slice N of the list is shard N
            part = [json.loads(line) for line in (out / "manifest.parts" / f"{number:05d}.jsonl").read_text().splitlines()]
            assert sorted(r["line"] for r in part) == list(range(10 * number + 1, min(10 * number + 11, 63)))
        assert not [p for p in tree(out) if p.startswith(".imgfetch")]  # no temporary folder, no lock left


def tar_samples(out):
    return read_tars(sorted(glob.glob(str(out / "*.tar"))))


def test_webdataset_shards_written_by_the_dask_workers(cluster, tmp_path):
    import pyarrow.parquet as pq

    with ImageServer(count=45, seed=6, latency_ms=5) as srv:
        urls = srv.image_urls()
        write_list(tmp_path / "urls.txt", urls[:20] + [srv.url("/status/500")] + urls[20:])
        out = tmp_path / "out"
        assert main(get(cluster, tmp_path / "urls.txt", out, "--shard-size", "10", "--output-format", "webdataset",
                        "-q")) == 1
        samples = tar_samples(out)
        assert len(samples) == 45
        for sample in samples:  # every image decodes and is the server's, under its own record
            image = next(sample[ext] for ext in ("jpg", "png", "webp", "gif", "bmp", "tiff") if ext in sample)
            assert image.size == (sample["json"]["width"], sample["json"]["height"])
            assert sample["json"]["key"] == sample["__key__"]
            assert sample["json"]["sha256"] == hashlib.sha256(srv.image_bytes(urls.index(sample["json"]["url"]))).hexdigest()
        rows = [row for path in sorted(glob.glob(str(out / "0*.parquet"))) for row in pq.read_table(path).to_pylist()]
        assert sorted(r["line"] for r in rows) == list(range(1, 47))  # one row per URL, the failure too
        assert [r["status"] for r in rows if r["line"] == 21] == ["failed"]
        for number in range(5):
            stats = json.loads((out / f"{number:05d}_stats.json").read_text())
            assert stats["count"] == (10 if number < 4 else 6)
        records = read_manifest(out)
        assert [r["line"] for r in records] == list(range(1, 47))
        assert {r["shard"] for r in records} == {f"{n:05d}.tar" for n in range(5)}
        assert not [p for p in tree(out) if ".tmp" in p or p.startswith(".imgfetch")]


def test_resume_skips_complete_shards_and_redoes_a_cut_one_per_url(cluster, tmp_path, capsys):
    with ImageServer(count=30, seed=8, latency_ms=5) as srv:
        write_list(tmp_path / "urls.txt", srv.image_urls())
        out = tmp_path / "out"
        assert main(get(cluster, tmp_path / "urls.txt", out, "--shard-size", "10", "-q")) == 0
        assert srv.stats.requests == 30
        # shard 1 as a kill leaves it: no counts file, 4 records and a fifth cut mid-line
        part = out / "manifest.parts" / "00001.jsonl"
        lines = part.read_text().splitlines(keepends=True)
        part.write_text("".join(lines[:4]) + lines[4][:30])
        (out / "manifest.parts" / "00001_stats.json").unlink()
        assert main(get(cluster, tmp_path / "urls.txt", out, "--shard-size", "10")) == 0
        assert "ok 30 (24 from earlier runs)" in capsys.readouterr().err
        assert srv.stats.requests == 36  # only shard 1's six URLs without a record: shards 0 and 2 were never sent
        assert main(get(cluster, tmp_path / "urls.txt", out, "--shard-size", "10", "-q")) == 0
        assert srv.stats.requests == 36  # all complete now: nothing handed out at all
    records = read_manifest(out)
    assert [r["line"] for r in records] == list(range(1, 31)) and all(r["status"] == "ok" for r in records)
    assert sorted(lines_by_key(out).values()) == [1] * 30  # one readable line per URL, no duplicate


def test_resume_redoes_a_dataset_shard_that_was_not_published_whole(cluster, tmp_path):
    with ImageServer(count=30, seed=8, latency_ms=5) as srv:
        write_list(tmp_path / "urls.txt", srv.image_urls())
        out = tmp_path / "out"
        command = get(cluster, tmp_path / "urls.txt", out, "--shard-size", "10", "--output-format", "webdataset", "-q")
        assert main(command) == 0
        # a kill during shard 2's publishing: its tar and rows are in, its part and counts are not
        (out / "manifest.parts" / "00002.jsonl").unlink()
        (out / "manifest.parts" / "00002_stats.json").unlink()
        assert main(command) == 0
        assert srv.stats.requests == 40  # shard 2 again, whole; shards 0 and 1 skipped
    assert len(tar_samples(out)) == 30
    assert [r["line"] for r in read_manifest(out)] == list(range(1, 31))


@pytest.mark.parametrize("output_format", ["files", "webdataset"])
def test_a_dask_worker_killed_mid_shard_costs_no_sample_and_no_duplicate(cluster, tmp_path, output_format):
    import pyarrow.parquet as pq
    from distributed import Client

    with ImageServer(count=40, seed=9, latency_ms=150) as srv, Client(cluster, timeout=30) as client:
        urls = srv.image_urls()
        write_list(tmp_path / "urls.txt", urls)
        out = tmp_path / "out"
        proc = start_cli(get(cluster, tmp_path / "urls.txt", out, "--shard-size", "10", "--threads", "2",
                             "--output-format", output_format, "-q"))
        err = kill_a_worker_mid_run(client, proc, lambda: srv.stats.requests >= 6)  # both workers mid-shard
        assert proc.returncode == 0, err
        assert srv.stats.requests > 40  # the killed worker's shards were run again on a live one
        records = read_manifest(out)
        assert [r["line"] for r in records] == list(range(1, 41)) and all(r["status"] == "ok" for r in records)
        assert sorted(lines_by_key(out).values()) == [1] * 40
        if output_format == "files":
            for record in records:
                assert (out / record["path"]).read_bytes() == srv.image_bytes(record["line"] - 1)
        else:
            samples = tar_samples(out)
            assert sorted(s["json"]["line"] for s in samples) == list(range(1, 41))
            for sample in samples:
                digest = hashlib.sha256(srv.image_bytes(sample["json"]["line"] - 1)).hexdigest()
                assert sample["json"]["sha256"] == digest
            rows = [r for path in glob.glob(str(out / "0*.parquet")) for r in pq.read_table(path).to_pylist()]
            assert sorted(r["line"] for r in rows) == list(range(1, 41))
        assert not [p for p in tree(out) if ".tmp" in p or ".publishing-" in p or p.startswith(".imgfetch")]


def test_download_threads_are_per_dask_worker_process_not_per_shard(cluster, tmp_path):
    """Each Dask worker process has 4 Dask threads and runs 2 shards at once, on one pool of --threads 3."""
    with ImageServer(count=60, seed=10, latency_ms=100) as srv:
        write_list(tmp_path / "urls.txt", srv.image_urls())
        assert main(get(cluster, tmp_path / "urls.txt", tmp_path / "out", "--shard-size", "5", "--threads", "3",
                        "-q")) == 0
        assert srv.stats.max_in_flight == 6  # 2 processes x 3 threads


def test_a_shards_downloads_go_on_while_its_image_step_lags_behind(cluster, tmp_path):
    """A shard's download threads hand their bodies to the backlog, as a local worker's do: with 2 threads and an
    image step of 0.2 s an image, the list's 20 URLs all reach the server long before the images are done."""
    from distributed import Client

    def slow_image_step(on: bool) -> None:  # run in each Dask worker, so nested: cloudpickle sends it by value
        """Every image step of a shard takes 0.2 s more (as a slow resize would), or no more."""
        from imgfetch.engine import pipeline, shard_task

        keep = getattr(pipeline.keep_fetched, "original", pipeline.keep_fetched)

        def slow(*args, **kwargs):
            time.sleep(0.2)
            return keep(*args, **kwargs)
        slow.original = keep  # type: ignore[attr-defined]
        for module in (pipeline, shard_task):
            module.keep_fetched = slow if on else keep  # type: ignore[attr-defined]

    with Client(cluster) as client, ImageServer(count=20, seed=14) as srv:
        write_list(tmp_path / "urls.txt", srv.image_urls())
        client.run(slow_image_step, True)
        seen: list[tuple[float, int]] = []
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.01):
                seen.append((time.monotonic(), srv.stats.requests))
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            assert main(get(cluster, tmp_path / "urls.txt", tmp_path / "out", "--shard-size", "20", "--threads", "2",
                            "-q")) == 0
        finally:
            done.set()
            watcher.join()
            client.run(slow_image_step, False)
    first = next(t for t, n in seen if n)
    by = max(n for t, n in seen if t <= first + 0.6)
    # Threads held through the image step would have fetched about 2 per 0.2 s: 8 by then.
    assert by >= 16, seen
    assert [r["status"] for r in read_manifest(tmp_path / "out")] == ["ok"] * 20


def test_a_slow_url_holds_only_its_own_thread_and_records_come_back_per_shard(cluster, tmp_path):
    from imgfetch import iter_download

    with ImageServer(count=40, seed=12, latency_ms=50) as srv:
        hang = srv.url("/hang?seconds=3")
        started = time.monotonic()
        seen = [(time.monotonic() - started, r) for r in iter_download(
            [hang, *srv.image_urls()], tmp_path / "o", executor="dask", scheduler=cluster, shard_size=5, threads=3,
            progress=False, timeout=5, max_time=10, retries=0)]
    assert sorted(r.line for _, r in seen) == list(range(1, 42))  # the library gets every record, read back
    hang_at = next(t for t, r in seen if r.line == 1)
    assert max(t for t, r in seen if r.line > 5) < hang_at - 1.0  # the other shards did not wait for it
    assert all(r.status == "ok" and os.path.exists(r.abspath) for _, r in seen if r.line > 1)
    assert len(os.listdir(tmp_path / "o" / "manifest.parts")) == 2 * 9  # each shard's part and counts, written by it


def test_a_stop_under_dask_records_what_finished_and_leaves_nothing_running(cluster, tmp_path):
    """Ctrl-C while each Dask worker process's one download thread holds a URL, a slow image (shard 0) and an
    endless drip (shard 1): the slow one finishes in the grace period and is recorded, no URL starts after the
    stop, the drip is cut, and nothing reaches the server or OUT once imgfetch has exited."""
    with ImageServer(count=40, seed=13, latency_ms=100) as srv:
        images = srv.image_urls()
        slow = srv.url(srv.images.path(0) + "?latency_ms=2500")
        drip = srv.url(srv.images.path(10).replace("/img/", "/drip/", 1) + "?interval=0.2")
        write_list(tmp_path / "urls.txt", [slow, *images[1:10], drip, *images[11:]])
        out = tmp_path / "out"
        proc = start_cli(get(cluster, tmp_path / "urls.txt", out, "--shard-size", "10", "--threads", "1", "--timeout", "5",
                             "-q"))
        try:
            held = {srv.images.path(0), srv.images.path(10).replace("/img/", "/drip/", 1)}
            wait_for(lambda: held <= set(srv.stats.by_path))  # both threads are held from here on
            at_stop = srv.stats.requests
            os.killpg(proc.pid, signal.SIGINT)
            sent = time.monotonic()
            _, err = proc.communicate(timeout=30)
            stopped_in = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        assert proc.returncode == 130, err
        wait_for(lambda: srv.stats.in_flight == 0, 1.0)  # the drip was cut: no task still downloads
        left = tree(out)
        time.sleep(1.0)
        assert tree(out) == left and srv.stats.requests == at_stop  # nothing started or saved after the stop
    records = read_manifest(out)
    assert 1 in {r["line"] for r in records} and 11 not in {r["line"] for r in records}  # slow kept, drip cut
    for record in records:
        assert record["status"] == "ok", record
        assert hashlib.sha256((out / record["path"]).read_bytes()).hexdigest() == record["sha256"]
    images_on_disk = {p for p in tree(out) if "/" not in p and p != "manifest.parts"}
    assert images_on_disk == {r["path"] for r in records}  # every image has its record; no lock, no temporary folder
    assert not (out / "manifest.parts" / "00001_stats.json").exists()  # the drip's shard is not complete: redone next run
    assert 4.5 < stopped_in < 10  # the grace period (5 s), then a prompt end


def test_the_bar_moves_while_a_shard_runs_and_ends_at_one_per_url(cluster, tmp_path, monkeypatch):
    from imgfetch import download
    from imgfetch.engine import run

    moves = []

    class Bar:  # the run's progress bar, recording how it is moved
        def __init__(self, *args, **kwargs):
            pass

        def add_counts(self, done, skipped=0):
            moves.append((time.monotonic(), done, skipped))

        def close(self, complete):
            moves.append((time.monotonic(), "closed", complete))

    monkeypatch.setattr(run, "Progress", Bar)
    with ImageServer(count=30, seed=14, latency_ms=150) as srv:
        download(srv.image_urls(), tmp_path / "o", executor="dask", scheduler=cluster, threads=2, progress=True,
                 timeout=2, retries=0)  # one shard of 30 (--shard-size 10,000), about 2 s
    ended = moves[-1][0]
    assert moves[-1][1:] == ("closed", True)
    assert sum(done - skipped for _, done, skipped in moves[:-1]) == 30  # each record counted once
    assert any(done > 0 for at, done, _ in moves[:-1] if at < ended - 0.5)  # not all at the shard's end


def test_leaving_iter_download_under_dask_leaves_nothing_running(cluster, tmp_path):
    from imgfetch import iter_download

    with ImageServer(count=20, seed=15, latency_ms=20) as srv:
        images = srv.image_urls()
        drip = srv.url(srv.images.path(9).replace("/img/", "/drip/", 1) + "?interval=0.2")
        out = tmp_path / "o"
        results = iter_download([*images[:5], *images[10:14], drip, *images[14:20]], out, executor="dask",
                                scheduler=cluster, shard_size=5, threads=2, progress=False, timeout=5, retries=0)
        first = next(results)  # shard 0 or 2 is done; shard 1 holds the drip
        assert first.status == "ok"
        left_at = time.monotonic()
        results.close()
        assert time.monotonic() - left_at < 4  # the cut, then at most 2 s for the tasks to end
        wait_for(lambda: srv.stats.in_flight == 0, 1.0)
        requests, files = srv.stats.requests, tree(out)
        time.sleep(1.0)
        assert srv.stats.requests == requests and tree(out) == files  # nothing runs or saves after the return
    records = read_manifest(out)
    assert 10 not in {r["line"] for r in records}  # the drip was cut, not recorded: fetched by the next run
    for record in records:
        assert record["status"] == "ok" and (out / record["path"]).is_file()
    assert not [p for p in files if p.startswith(".imgfetch")]  # no lock, no temporary folder


def test_a_shard_task_sends_back_counts_only_never_images_or_records(tmp_path, monkeypatch):
    """What a shard task returns to the client (through the scheduler) stays a few hundred bytes, whatever the
    shard holds; its records are in its part, its images in its tar."""
    import pickle

    from imgfetch.engine import shard_task
    from imgfetch.engine.markers import RunMarkers
    from imgfetch.engine.shard_task import ShardJob, run_shard

    monkeypatch.setattr(shard_task, "own_process", lambda opts: None)  # this is pytest's process, not a worker's
    from imgfetch.options import Options
    from imgfetch.sources import open_entries

    with ImageServer(count=60, seed=17, latency_ms=1) as srv:
        out, tmp = tmp_path / "out", tmp_path / "out" / ".imgfetch-tmp-test"
        tmp.mkdir(parents=True)
        RunMarkers(str(tmp)).create()
        entries = tuple(open_entries([*srv.image_urls(), srv.url("/status/404")]))
        opts = Options(executor="dask", output_format="webdataset", threads=4, timeout=2, retries=0, progress=False)
        counts = run_shard(ShardJob(opts, str(out), str(tmp), 0, entries))
    assert counts["complete"] and counts["counts"] == {"ok": 60, "failed": 1}
    assert len(pickle.dumps(counts)) < 1000  # 61 records and ~0.7 MB of images stayed on the worker
    assert (out / "00000.tar").stat().st_size > 60 * 1000
    assert len(read_manifest(out)) == 61
