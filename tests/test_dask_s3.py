"""--executor dask with -o s3://...: a real `dask scheduler` and two `dask worker` processes, and an S3 bucket on a
moto_server, all on loopback. Each Dask worker uploads its own complete shards; the client checks the bucket
first, resumes from it, and leaves nothing temporary in it."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import distributed  # noqa: F401 - in the test extra: these tests run wherever the tests do, never skip
import pyarrow.parquet as pq

from conftest import read_tars, wait_for
from daskcluster import kill_a_worker_mid_run, start_cli
from imgfetch import read_manifest
from imgfetch.cli import main
from imgfetch.server import ImageServer
from imgfetch.store import remote

SHARD_FILES = ("_stats.json", ".parquet", ".tar")


def get(cluster, moto_server, urls_file, out, *args: str) -> list[str]:
    """The Dask workers were started without any AWS environment: the endpoint and credentials reach them only
    through --storage-option (the Destination pickles with its options)."""
    return ["get", str(urls_file), "-o", out, "--executor", "dask", "--scheduler", cluster,
            "--output-format", "webdataset", "--timeout", "2", "--retries", "0",
            "--storage-option", f"client_kwargs.endpoint_url={moto_server}",
            "--storage-option", "key=testing", "--storage-option", "secret=testing",
            "--storage-option", "client_kwargs.region_name=us-east-1", *args]


def options(moto_server) -> dict:
    """What read_manifest takes to reach the bucket (the environment's endpoint may be an earlier test module's
    moto_server in fsspec's instance cache)."""
    return {"client_kwargs": {"endpoint_url": moto_server, "region_name": "us-east-1"}, "key": "testing",
            "secret": "testing"}


def write_list(path, urls) -> None:
    path.write_text("\n".join(urls) + "\n")


def objects(fs, prefix: str) -> list[str]:
    """Every object under the prefix, relative to it."""
    fs.invalidate_cache()
    return sorted(path[len(prefix) + 1:] for path in fs.find(prefix))


def expected_objects(shards: int) -> list[str]:
    return sorted([f"{n:05d}{suffix}" for n in range(shards) for suffix in SHARD_FILES]
                  + [f"manifest.parts/{n:05d}{suffix}" for n in range(shards) for suffix in (".jsonl", "_stats.json")])


def fetched_back(fs, prefix: str, local) -> tuple[list[dict], list[dict]]:
    """Download every object; read every tar with webdataset (images decoded) and the parquet with pyarrow."""
    fs.get(prefix + "/", str(local) + "/", recursive=True)
    tars = sorted(str(p) for p in local.glob("*.tar"))
    samples = read_tars(tars)
    rows = [row for path in sorted(local.glob("*.parquet")) for row in pq.read_table(path).to_pylist()]
    return samples, rows


def test_webdataset_shards_reach_the_bucket_from_the_dask_workers(cluster, moto_server, s3, tmp_path, capsys):
    fs, bucket = s3
    with ImageServer(count=45, seed=21, latency_ms=5) as srv:
        urls = srv.image_urls()
        write_list(tmp_path / "urls.txt", urls[:20] + [srv.url("/status/500")] + urls[20:])
        out = f"s3://{bucket}/prefix"
        code = main(get(cluster, moto_server, tmp_path / "urls.txt", out, "--shard-size", "10", "--threads", "3"))
        err = capsys.readouterr().err
        assert code == 1, err
        assert "ok 45, failed 1" in err and f"manifest: {out}/manifest.parts" in err
        assert objects(fs, f"{bucket}/prefix") == expected_objects(5)  # nothing temporary, nothing else
        samples, rows = fetched_back(fs, f"{bucket}/prefix", tmp_path / "back")
        ok_lines = [n for n in range(1, 47) if n != 21]
        assert sorted(s["json"]["line"] for s in samples) == ok_lines
        for sample in samples:
            index = sample["json"]["line"] - 1 - (sample["json"]["line"] > 21)
            assert hashlib.sha256(srv.image_bytes(index)).hexdigest() == sample["json"]["sha256"]
            [image] = [value for value in sample.values() if hasattr(value, "getpixel")]  # decoded by PIL
            assert image.size == (sample["json"]["width"], sample["json"]["height"])
        assert sorted(r["line"] for r in rows) == list(range(1, 47))  # the failure has its row too
    records = read_manifest(out, storage_options=options(moto_server))  # the parts in the bucket, as one table
    assert [r["line"] for r in records] == list(range(1, 47))
    assert [r["status"] for r in records].count("ok") == 45
    assert len({r["pid"] for r in records if r["pid"]}) == 2 and os.getpid() not in {r["pid"] for r in records}
    work = remote.work_folder(out)
    assert not work.exists() or not [p for p in work.rglob("*") if p.is_file()]  # the client held no bytes


def test_a_dask_worker_killed_mid_shard_leaves_one_record_per_url_and_no_temporary_object(
        cluster, moto_server, s3, tmp_path):
    from distributed import Client

    fs, bucket = s3
    out = f"s3://{bucket}/killed"
    with ImageServer(count=40, seed=22, latency_ms=150) as srv, Client(cluster, timeout=30) as client:
        write_list(tmp_path / "urls.txt", srv.image_urls())
        proc = start_cli(get(cluster, moto_server, tmp_path / "urls.txt", out, "--shard-size", "10", "--threads", "2",
                             "-q"))
        err = kill_a_worker_mid_run(client, proc, lambda: srv.stats.requests >= 6)  # both workers mid-shard
        assert proc.returncode == 0, err
        assert srv.stats.requests > 40  # the killed worker's shard ran again on the live one
    records = read_manifest(out, storage_options=options(moto_server))
    assert [r["line"] for r in records] == list(range(1, 41)) and all(r["status"] == "ok" for r in records)
    assert objects(fs, f"{bucket}/killed") == expected_objects(4)
    samples, _rows = fetched_back(fs, f"{bucket}/killed", tmp_path / "back")
    assert sorted(s["json"]["line"] for s in samples) == list(range(1, 41))  # every sample once, all readable


def test_a_rerun_skips_the_shards_complete_in_the_bucket_and_redoes_a_cut_one(cluster, moto_server, s3, tmp_path,
                                                                              capsys):
    fs, bucket = s3
    out = f"s3://{bucket}/again"
    with ImageServer(count=30, seed=23, latency_ms=5) as srv:
        write_list(tmp_path / "urls.txt", srv.image_urls())
        command = get(cluster, moto_server, tmp_path / "urls.txt", out, "--shard-size", "10")
        assert main([*command, "-q"]) == 0
        assert srv.stats.requests == 30
        fs.rm(f"{bucket}/again/manifest.parts/00001_stats.json")  # shard 1 as a kill mid-publish leaves it
        assert main(command) == 0
        assert "ok 30 (20 from earlier runs)" in capsys.readouterr().err
        assert srv.stats.requests == 40  # shard 1 again, whole; shards 0 and 2 were never handed out
        assert main([*command, "-q"]) == 0
        assert srv.stats.requests == 40  # all complete: nothing downloaded
    assert objects(fs, f"{bucket}/again") == expected_objects(3)
    assert [r["line"] for r in read_manifest(out, storage_options=options(moto_server))] == list(range(1, 31))


def test_a_bucket_that_cannot_be_used_is_one_line_before_any_download(cluster, moto_server, s3, tmp_path):
    with ImageServer(count=5, seed=24) as srv:
        write_list(tmp_path / "urls.txt", srv.image_urls())
        env = {**os.environ, remote.CACHE_ENV: str(tmp_path / "cache")}
        done = subprocess.run([sys.executable, "-m", "imgfetch", *get(cluster, moto_server, tmp_path / "urls.txt",
                               "s3://no-such-bucket-here/prefix")], capture_output=True, text=True, env=env,
                              timeout=120)
        assert done.returncode == 2
        [line] = done.stderr.splitlines()
        assert line.startswith("imgfetch: error: s3://no-such-bucket-here/prefix") and "cannot be used" in line
        assert srv.stats.requests == 0


def test_the_client_needs_no_s3fs_the_dask_workers_check_and_list_the_bucket(cluster, moto_server, s3, tmp_path):
    """A client machine without the s3 extra drives a cluster that has it: the bucket is checked and its complete
    shards listed by a task on the cluster, so the client never imports fsspec or s3fs; nor the download path
    (requests, Pillow), which only the Dask workers run. Their start-up is CPU the client does not spend."""
    fs, bucket = s3
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    for name in ("s3fs", "fsspec", "requests", "PIL"):
        (blocker / f"{name}.py").write_text(f"raise ImportError('No module named {name}')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker), remote.CACHE_ENV: str(tmp_path / "cache")}
    out = f"s3://{bucket}/thin"
    with ImageServer(count=8, seed=27, latency_ms=5) as srv:
        write_list(tmp_path / "urls.txt", srv.image_urls())
        command = [sys.executable, "-m", "imgfetch", *get(cluster, moto_server, tmp_path / "urls.txt", out,
                                                            "--shard-size", "5")]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "done: ok 8, failed 0," in done.stderr
        rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert rerun.returncode == 0 and "ok 8 (8 from earlier runs)" in rerun.stderr, rerun.stderr
        assert srv.stats.requests == 8  # the re-run found both shards complete in the bucket
    assert objects(fs, f"{bucket}/thin") == expected_objects(2)


def test_a_stop_records_what_finished_and_leaves_nothing_in_the_bucket_or_the_scheduler(cluster, moto_server, s3,
                                                                                       tmp_path):
    """Ctrl-C with a slow image in each shard: no URL starts after it, what finished is published whole, the
    rest is fetched by the next run, and the run's stop state is gone from the scheduler."""
    from distributed import Client

    fs, bucket = s3
    out = f"s3://{bucket}/stopped"
    with ImageServer(count=40, seed=25, latency_ms=100) as srv:
        write_list(tmp_path / "urls.txt", srv.image_urls())
        proc = start_cli(get(cluster, moto_server, tmp_path / "urls.txt", out, "--shard-size", "5", "--threads", "1",
                             "-q"))
        try:
            wait_for(lambda: srv.stats.requests >= 12)
            os.killpg(proc.pid, signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        assert proc.returncode == 130, err
        served = srv.stats.requests
        time.sleep(1.0)
        assert srv.stats.requests == served  # nothing more once imgfetch has exited
        assert served < 40
    names = objects(fs, f"{bucket}/stopped")
    complete = sorted(int(n[len("manifest.parts/"):][:5]) for n in names if n.endswith("_stats.json")
                      and n.startswith("manifest.parts/"))
    assert complete and len(complete) < 8
    assert [n for n in names if not n.startswith("manifest.parts/")] == sorted(
        f"{n:05d}{s}" for n in complete for s in SHARD_FILES)  # only whole shards
    records = read_manifest(out, storage_options=options(moto_server))
    assert sorted(r["line"] for r in records) == [5 * n + i for n in complete for i in range(1, 6)]
    with Client(cluster, timeout=30) as client:
        assert not client.get_metadata(["imgfetch-runs"], default={})  # no run's state left behind


def test_download_returns_each_shards_records_read_back_from_the_bucket(cluster, moto_server, s3, tmp_path):
    from imgfetch import download

    fs, bucket = s3
    out = f"s3://{bucket}/library"
    storage = [("client_kwargs.endpoint_url", moto_server), ("key", "testing"), ("secret", "testing"),
               ("client_kwargs.region_name", "us-east-1")]
    with ImageServer(count=12, seed=26) as srv:
        results = download(srv.image_urls(), out, executor="dask", scheduler=cluster, output_format="webdataset",
                           shard_size=5, storage_options=storage, progress=False, timeout=2, retries=0)
    assert [r.line for r in results] == list(range(1, 13)) and all(r.status == "ok" for r in results)
    assert objects(fs, f"{bucket}/library") == expected_objects(3)
