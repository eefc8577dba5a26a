"""Outputs on object storage: -o s3://bucket/prefix against a moto_server on loopback, memory:// in process,
resume from the destination, a SIGKILL mid-run, upload failures, and the one-line errors."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pyarrow.parquet as pq
import pytest

from conftest import FAST, read_tars
from imgfetch import ImgFetchError, OutputError, download
from imgfetch.cli import main
from imgfetch.options import OptionError, Options
from imgfetch.server import ImageServer
from imgfetch.store import remote
from imgfetch.store.remote import Destination

SHARD_OBJECT = re.compile(r"^\d{5}(\.tar|\.parquet|_stats\.json)$")


def objects(fs, prefix: str) -> list[str]:
    fs.invalidate_cache()
    return sorted(path.rsplit("/", 1)[-1] for path in fs.find(prefix))


def fetched_back(fs, prefix: str, local: Path) -> tuple[list[dict], list[dict]]:
    """Download every object, then read the tars with webdataset (images decoded) and the parquet with pyarrow."""
    fs.get(prefix + "/", str(local) + "/", recursive=True)
    tars = sorted(str(p) for p in local.glob("*.tar"))
    samples = read_tars(tars)
    rows = [row for path in sorted(local.glob("*.parquet")) for row in pq.read_table(path).to_pylist()]
    return samples, rows


def url_list(path: Path, urls: list[str]) -> str:
    path.write_text("\n".join(urls) + "\n")
    return str(path)


# Fork only: the S3 upload from spawn and forkserver workers (a fresh interpreter importing s3fs) is in
# test_ctrl_c_uploads_exactly_what_was_recorded (spawn) and test_sigkill_mid_run_... (forkserver).
def test_webdataset_to_s3_reads_back(s3, server, tmp_path):
    fs, bucket = s3
    urls = server.image_urls()[:23]
    code = main(["get", url_list(tmp_path / "urls.txt", urls), "-o", f"s3://{bucket}/run1", "-q",
                 "--output-format", "webdataset", "--shard-size", "5", "--workers", "2", "--threads", "3",
                 "--start-method", "fork", "--timeout", "2"])
    assert code == 0
    names = objects(fs, f"{bucket}/run1")
    assert names and all(SHARD_OBJECT.match(name) for name in names)  # final names only, nothing temporary
    samples, rows = fetched_back(fs, f"{bucket}/run1", tmp_path / "back")
    assert sorted(s["json"]["url"] for s in samples) == sorted(urls)
    images = [next(s[ext] for ext in ("jpg", "png", "webp", "gif") if ext in s) for s in samples]
    assert [image.size for image in images] == [(s["json"]["width"], s["json"]["height"]) for s in samples]
    assert sorted(row["url"] for row in rows) == sorted(urls) and {row["status"] for row in rows} == {"ok"}
    work = remote.work_folder(f"s3://{bucket}/run1")
    assert not [p.name for p in work.iterdir() if SHARD_OBJECT.match(p.name)]  # uploaded shards leave no copy


def test_memory_destination_resumes_from_the_destination(fresh_server, tmp_path, monkeypatch):
    monkeypatch.setenv(remote.CACHE_ENV, str(tmp_path / "machine-a"))
    out = "memory://imgfetch-test/parquet-run"
    urls = fresh_server.image_urls()[:12] + [fresh_server.url("/status/404")]
    first = download(urls, out, output_format="parquet", shard_size=4, workers=2, threads=2, start_method="fork",
                     **FAST)
    assert [r.status for r in first].count("ok") == 12
    fs = fsspec.filesystem("memory")
    rows = [row for path in sorted(fs.glob("/imgfetch-test/parquet-run/*.parquet"))
            for row in pq.read_table(path, filesystem=fs).to_pylist()]
    assert sorted(row["url"] for row in rows) == sorted(urls)
    assert all(row["image"] for row in rows if row["status"] == "ok")
    before = fresh_server.stats.snapshot()["requests"]
    monkeypatch.setenv(remote.CACHE_ENV, str(tmp_path / "machine-b"))  # another machine: no local manifest
    again = download(urls, out, output_format="parquet", shard_size=4, workers=2, threads=2, start_method="fork",
                     **FAST)
    assert fresh_server.stats.snapshot()["requests"] == before  # nothing fetched again, not even the 404
    assert sorted((r.url, r.status) for r in again) == sorted((r.url, r.status) for r in first)
    assert all(r.skipped for r in again)


def test_sigkill_mid_run_leaves_no_temporary_object_and_resume_skips_complete_shards(s3, tmp_path):
    fs, bucket = s3
    prefix = f"{bucket}/killed"
    with ImageServer(count=80, seed=5, latency_ms=120) as srv:
        urls = srv.image_urls()
        command = [sys.executable, "-m", "imgfetch", "get", url_list(tmp_path / "urls.txt", urls), "-q",
                   "-o", f"s3://{prefix}", "--output-format", "webdataset", "--shard-size", "4",
                   "--workers", "2", "--threads", "2", "--start-method", "forkserver", "--timeout", "2"]
        proc = subprocess.Popen(command, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not any(name.endswith("_stats.json") for name in objects(fs, prefix)):
            assert proc.poll() is None and time.monotonic() < deadline, "no shard was uploaded before the end"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stderr.close()
        names = objects(fs, prefix)
        assert all(SHARD_OBJECT.match(name) for name in names), names
        complete = [name for name in names if name.endswith("_stats.json")]
        done = sum(json.loads(fs.cat(f"{prefix}/{name}"))["count"] for name in complete)
        assert 0 < done < len(urls)
        before = srv.stats.snapshot()["requests"]
        env = dict(os.environ, **{remote.CACHE_ENV: str(tmp_path / "elsewhere")})  # another machine
        rerun = [*command[:-3], "fork", *command[-2:]]  # a resume, whatever the start method: fork starts soonest
        assert subprocess.run(rerun, env=env, timeout=120).returncode == 0
        assert srv.stats.snapshot()["requests"] - before == len(urls) - done  # complete shards are not redone
    names = objects(fs, prefix)
    assert all(SHARD_OBJECT.match(name) for name in names)
    assert all(name.replace(".tar", "_stats.json") in names for name in names if name.endswith(".tar"))
    samples, rows = fetched_back(fs, prefix, tmp_path / "back")
    assert sorted(row["url"] for row in rows) == sorted(urls)  # one row per URL
    assert sorted(s["json"]["url"] for s in samples) == sorted(urls)


def test_a_file_url_destination_gets_whole_files_and_loses_what_a_kill_left(server, tmp_path, monkeypatch):
    monkeypatch.setenv(remote.CACHE_ENV, str(tmp_path / "cache"))
    out = tmp_path / "published"
    out.mkdir()
    (out / "00007.tar.partial").write_bytes(b"cut")  # what a kill mid-copy leaves
    (out / "00007.tar").write_bytes(b"a tar without its stats")  # and a kill between the tar and its stats
    urls = server.image_urls()[:9]
    results = download(urls, f"file://{out}", output_format="webdataset", shard_size=5, workers=1, threads=3,
                       start_method="fork", **FAST)  # spawned workers publishing: test_ctrl_c_uploads_exactly_...
    assert [r.status for r in results] == ["ok"] * 9
    assert sorted(p.name for p in out.iterdir()) == [f"{n:05d}{part}" for n in (8, 9)
                                                     for part in (".parquet", ".tar", "_stats.json")]
    samples = read_tars(sorted(str(p) for p in out.glob("*.tar")))
    assert sorted(s["json"]["url"] for s in samples) == sorted(urls)


def test_ctrl_c_uploads_exactly_what_was_recorded(s3, tmp_path):
    fs, bucket = s3
    prefix = f"{bucket}/stopped"
    with ImageServer(count=60, seed=2, latency_ms=150) as srv:
        urls = srv.image_urls()
        command = [sys.executable, "-m", "imgfetch", "get", url_list(tmp_path / "urls.txt", urls), "-q",
                   "-o", f"s3://{prefix}", "--output-format", "webdataset", "--shard-size", "4",
                   "--workers", "2", "--threads", "2", "--start-method", "spawn", "--timeout", "2"]
        proc = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        manifest = remote.work_folder(f"s3://{prefix}") / "manifest.jsonl"
        deadline = time.monotonic() + 60
        while not manifest.exists() or len(manifest.read_text().splitlines()) < 6:
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before the stop"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 128 + signal.SIGINT
        recorded = {json.loads(line)["url"] for line in manifest.read_text().splitlines()}
        names = objects(fs, prefix)
        samples, rows = fetched_back(fs, prefix, tmp_path / "back")
        assert 6 <= len(recorded) < len(urls)
        assert sorted(row["url"] for row in rows) == sorted(recorded)  # every record's shard went up, whole
        assert sorted(s["json"]["url"] for s in samples) == sorted(recorded)
        assert all(name.replace(".tar", "_stats.json") in names for name in names if name.endswith(".tar"))
        srv.stats.reset()
        rerun = [*command[:-3], "fork", *command[-2:]]  # a resume, whatever the start method: fork starts soonest
        assert subprocess.run(rerun, timeout=120).returncode == 0
        assert srv.stats.snapshot()["requests"] == len(urls) - len(recorded)


def test_a_failed_upload_is_one_error_and_the_next_run_uploads_the_kept_shard(fresh_server, tmp_path, monkeypatch):
    monkeypatch.setenv(remote.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(remote, "PUBLISH_BACKOFF_S", 0.01)
    out = "memory://imgfetch-test/failing"
    urls = fresh_server.image_urls()[:6]

    def refuse(self, local, target):
        raise PermissionError("Access Denied")

    put = Destination._put
    monkeypatch.setattr(Destination, "_put", refuse)
    options = dict(output_format="webdataset", shard_size=10, workers=1, threads=2, start_method="fork", **FAST)
    with pytest.raises(OutputError, match=r"cannot upload 00000\.tar to memory://imgfetch-test/failing after 4 "
                                          r"attempts: Access Denied; .* kept in .* uploaded when the same command"):
        download(urls, out, **options)
    work = remote.work_folder(out)
    assert {"00000.tar", "00000.parquet", "00000_stats.json"} <= {p.name for p in work.iterdir()}
    monkeypatch.setattr(Destination, "_put", put)
    before = fresh_server.stats.snapshot()["requests"]
    again = download(urls, out, **options)
    assert fresh_server.stats.snapshot()["requests"] == before and all(r.skipped for r in again)
    fs = fsspec.filesystem("memory")
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls("/imgfetch-test/failing", detail=False)) == [
        "00000.parquet", "00000.tar", "00000_stats.json"]
    assert not [p.name for p in work.iterdir() if SHARD_OBJECT.match(p.name)]


def test_a_shard_number_another_machine_reused_does_not_hide_this_machines_lost_urls(tmp_path, monkeypatch):
    """Machine A's shard 00000 never reaches the destination (a kill after its records, before its upload);
    machine B then publishes its own 00000. A's next run must fetch A's URLs again, and read B's rows."""
    out = "memory://imgfetch-test/clash"
    options = dict(output_format="webdataset", shard_size=50, workers=1, threads=2, start_method="fork", **FAST)
    with ImageServer(count=20, seed=11) as srv:
        urls_a, urls_b = srv.image_urls()[:6], srv.image_urls()[6:10]
        monkeypatch.setenv(remote.CACHE_ENV, str(tmp_path / "machine-a"))
        monkeypatch.setattr(remote, "PUBLISH_BACKOFF_S", 0.01)
        put = Destination._put
        monkeypatch.setattr(Destination, "_put", lambda self, local, target: (_ for _ in ()).throw(OSError("down")))
        with pytest.raises(OutputError):
            download(urls_a, out, **options)
        monkeypatch.setattr(Destination, "_put", put)
        for part in (".tar", ".parquet", "_stats.json"):  # as if killed before the upload: the shard is lost
            (remote.work_folder(out) / f"00000{part}").unlink()
        monkeypatch.setenv(remote.CACHE_ENV, str(tmp_path / "machine-b"))
        download(urls_b, out, **options)  # numbers from the destination's highest: its shard is 00000 too
        monkeypatch.setenv(remote.CACHE_ENV, str(tmp_path / "machine-a"))
        srv.stats.reset()
        again = download(urls_a + urls_b, out, **options)
        assert srv.stats.snapshot()["requests"] == len(urls_a)  # A's URLs again, none of B's
        assert [r.status for r in again] == ["ok"] * 10 and [r.skipped for r in again] == [False] * 6 + [True] * 4
    fs = fsspec.filesystem("memory")
    rows = [row for path in sorted(fs.glob("/imgfetch-test/clash/*.parquet"))
            for row in pq.read_table(path, filesystem=fs).to_pylist()]
    assert sorted(row["url"] for row in rows) == sorted(urls_a + urls_b)  # one row per URL


def run_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imgfetch", *args], capture_output=True, text=True, timeout=120,
                          env=env)


def test_missing_s3fs_is_one_line_before_any_download(fresh_server, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "s3fs.py").write_text("raise ImportError('No module named s3fs')\n")  # as if it were not installed
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")]),
               **{remote.CACHE_ENV: str(tmp_path / "cache")})
    done = run_cli(["get", fresh_server.image_urls()[0], "-o", "s3://bucket/prefix", "--output-format",
                    "webdataset"], env)
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["imgfetch: error: -o s3://bucket/prefix needs s3fs: pip install 'imgfetch[s3]'"]
    assert fresh_server.stats.snapshot()["requests"] == 0


@pytest.mark.parametrize("where", ["no such bucket", "wrong endpoint"])
def test_an_unusable_destination_is_one_line_before_any_download(s3, fresh_server, tmp_path, where):
    fs, bucket = s3
    extra = (["-o", "s3://no-such-bucket-here/prefix"] if where == "no such bucket" else
             ["-o", f"s3://{bucket}/prefix", "--storage-option", "client_kwargs.endpoint_url=http://127.0.0.1:9",
              "--storage-option", "retries=0", "--storage-option",
              'config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 0.5}'])
    started = time.monotonic()
    done = run_cli(["get", fresh_server.image_urls()[0], "--output-format", "webdataset", *extra])
    assert done.returncode == 2 and time.monotonic() - started < 30
    [line] = done.stderr.splitlines()
    assert line.startswith("imgfetch: error: s3://") and "cannot be used" in line
    assert fresh_server.stats.snapshot()["requests"] == 0


def test_storage_options_parse_nest_and_are_refused_where_they_would_be_ignored(tmp_path):
    opts = Options(storage_options=["client_kwargs.endpoint_url=http://127.0.0.1:9000", "anon=true",
                                    "client_kwargs.region_name=eu-west-1", "key=AKIA1234"])
    assert remote.nested(opts.storage_options) == {
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"},
        "anon": True, "key": "AKIA1234"}
    with pytest.raises(OptionError, match="storage_options must look like KEY=VALUE"):
        Options(storage_options=["anon"])
    with pytest.raises(OptionError, match="storage_options apply to an OUT that is a URL"):
        download([], tmp_path / "out", storage_options=["anon=true"], progress=False)
    with pytest.raises(OutputError, match="object storage takes --output-format webdataset or parquet"):
        download([], "memory://imgfetch-test/files", progress=False)
    with pytest.raises(ImgFetchError, match="fetch.. saves a file in a local folder"):
        from imgfetch import fetch
        fetch("http://127.0.0.1:9/a.jpg", "s3://bucket/prefix")


def test_a_destination_pickles_as_its_url_and_options():
    import pickle

    dest = Destination.from_spec("memory://imgfetch-test/pickled", [("skip_instance_cache", True)])
    dest.fs.pipe(dest.path("a"), b"x")
    copy = pickle.loads(pickle.dumps(dest))
    assert (copy.url, copy.storage_options, copy._fs) == (dest.url, {"skip_instance_cache": True}, None)
    assert copy.list() == ["a"] and copy.exists("a")
