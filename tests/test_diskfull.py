"""A full disk, on a real 600 KB tmpfs (root mounts it; others skip): one line, nothing lost, a clean resume."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from conftest import read_manifest, tree
from imgfetch.server import ImageServer


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounts a tmpfs, which needs root (CI runs as root)")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)]).returncode:
        pytest.fail("could not mount a tmpfs, even as root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)])


def test_a_full_disk_stops_with_one_line_records_everything_saved_and_resumes(small_disk, tmp_path):
    with ImageServer(count=300, seed=2) as server:
        urls = tmp_path / "urls.txt"
        urls.write_text("\n".join(server.image_urls()) + "\n")
        out = small_disk / "out"
        argv = [sys.executable, "-m", "imgfetch", "get", str(urls), "-o", str(out), "--workers", "2", "--threads", "4",
                "--timeout", "3", "--start-method", "forkserver"]
        first = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert first.returncode == 2
        line = first.stderr.strip().splitlines()[-1]
        records = read_manifest(out / "manifest.jsonl")
        ok = [r for r in records if r["status"] == "ok"]
        assert line == (f"imgfetch: error: the disk is full: {len(ok)} images saved in this run, each recorded in "
                        f"{out / 'manifest.jsonl'}; free some space, then run the same command again to resume")
        assert 5 < len(ok) < 300
        assert {r["error_kind"] for r in records if r["status"] != "ok"} <= {"disk_full"}
        assert "Traceback" not in first.stderr
        # every image on the disk is whole and recorded; no partial or temporary file
        assert tree(out) == {"manifest.jsonl"} | {r["path"] for r in ok}
        for r in ok:
            assert hashlib.sha256((out / r["path"]).read_bytes()).hexdigest() == r["sha256"]

        subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)
        server.stats.reset()
        second = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        assert server.stats.requests == 300 - len(ok)  # nothing complete is fetched again
        final = {r["line"]: r for r in read_manifest(out / "manifest.jsonl")}
        assert len(final) == 300 and all(r["status"] in ("ok", "skipped") for r in final.values())


def test_a_full_disk_at_high_concurrency_still_records_every_download_in_flight(small_disk, tmp_path):
    """Two processes x 64 threads and long records (a kept caption): when the disk fills, the records of
    the ~150 downloads in flight must still fit, so the manifest's reserve follows the number in flight."""
    subprocess.run(["mount", "-o", "remount,size=3m", str(small_disk)], check=True)
    caption = "a long caption " * 150  # about 2 KB a record
    with ImageServer(count=600, latency_ms=150, latency_spread=0.5, seed=4) as server:
        urls = tmp_path / "urls.csv"
        urls.write_text("url,caption\n" + "".join(f"{u},{caption}\n" for u in server.image_urls()))
        out = small_disk / "out"
        argv = [sys.executable, "-m", "imgfetch", "get", str(urls), "-o", str(out), "--workers", "2",
                "--threads", "64", "--keep-columns", "caption", "--retries", "0", "--timeout", "5",
                "--start-method", "forkserver"]
        run = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert run.returncode == 2, run.stderr
        assert run.stderr.strip().splitlines()[-1].startswith("imgfetch: error: the disk is full:")
        records = read_manifest(out / "manifest.jsonl")
        assert len(records) == server.stats.requests  # every download that started has its record
        ok = [r for r in records if r["status"] == "ok"]
        assert tree(out) == {"manifest.jsonl"} | {r["path"] for r in ok}


def test_an_errors_list_that_cannot_be_flushed_is_a_full_disk_and_leaves_the_old_file(small_disk):
    from imgfetch.errors import DiskFull
    from imgfetch.store.errorlist import ErrorsList

    errors = small_disk / "failed.txt"
    errors.write_text("the previous list\n")
    with open(small_disk / "filler", "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass
    listed = ErrorsList(errors, small_disk / "manifest.jsonl")
    with pytest.raises(DiskFull, match="No space left"):
        for n in range(2000):
            listed.add(f"http://127.0.0.1:9/{n}.jpg")
        listed.commit()
    listed.discard()
    assert errors.read_text() == "the previous list\n"
    assert tree(small_disk) == {"failed.txt", "filler"}
