"""Real signals to the real CLI: Ctrl-C, SIGTERM and a worker killed with SIGKILL."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import assert_clean, read_manifest, tree, wait_for
from imgfetch.server import ImageServer


def cli(urls: Path, out: Path, *extra: str, start_method: str = "forkserver", **popen) -> subprocess.Popen:
    argv = [sys.executable, "-m", "imgfetch", "get", str(urls), "-o", str(out), "--workers", "2", "--threads", "2",
            "--timeout", "2", "--retries", "0", "--start-method", start_method, *extra]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **popen)



def manifest_lines(out: Path) -> int:
    try:
        return len((out / "manifest.jsonl").read_bytes().splitlines())
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_flushes_a_consistent_manifest_and_resumes(tmp_path, signum, code):
    with ImageServer(count=60, latency_ms=150) as server:
        urls = tmp_path / "urls.txt"
        urls.write_text("\n".join(server.image_urls()) + "\n")
        out = tmp_path / "out"
        proc = cli(urls, out, "-q")
        wait_for(lambda: manifest_lines(out) >= 8, 15)
        os.killpg(proc.pid, signum)  # the whole group, as a terminal's Ctrl-C does
        sent = time.monotonic()
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == code, err
        assert time.monotonic() - sent < 6
        records = read_manifest(out / "manifest.jsonl")
        assert 8 <= len(records) < 60
        for record in records:
            assert record["status"] == "ok"
            assert hashlib.sha256((out / record["path"]).read_bytes()).hexdigest() == record["sha256"]
        assert_clean(out, records)  # every file listed, no temporary file, no lock left

        finished = {"/img/" + r["url"].rsplit("/img/", 1)[1] for r in records}
        server.stats.reset()
        proc = cli(urls, out, "-q", start_method="fork")  # a resume, whatever started the workers: fork starts soonest
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert not finished & set(server.stats.by_path)  # nothing finished is fetched twice
        assert server.stats.requests == 60 - len(records)
        final = read_manifest(out / "manifest.jsonl")[len(records):]
        assert len(final) == 60 and sum(r["skipped"] for r in final) == len(records)


def test_worker_killed_pool_is_rebuilt_and_repeat_killer_is_marked(tmp_path):
    with ImageServer(count=30, latency_ms=100) as server:
        victim = server.url("/img/0.jpg?latency_ms=3000")  # slow, so we can kill whoever fetches it
        urls = tmp_path / "urls.txt"
        urls.write_text("\n".join([victim, *server.image_urls()[1:]]) + "\n")
        out = tmp_path / "out"
        proc = cli(urls, out, "-v")
        killed: list[int] = []

        def watch() -> None:
            for line in proc.stderr:
                if line.startswith("[Process ID]:") and line.rstrip().endswith(victim):
                    pid = int(line.split(":", 1)[1].split()[0])
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        proc.wait(timeout=60)
        watcher.join(timeout=5)
        proc.stderr.close()  # the watcher has read it to its end
        assert len(killed) == 2 and killed[0] != killed[1]
        assert proc.returncode == 1
        records = {r["line"]: r for r in read_manifest(out / "manifest.jsonl")}
        assert len(records) == 30
        assert records[1]["status"] == "failed" and "worker crashed" in records[1]["error"]
        assert all(records[n]["status"] == "ok" for n in range(2, 31))
        assert_clean(out, list(records.values()))


def test_second_run_into_the_same_folder_is_refused(server, tmp_path):
    from imgfetch.cli import main
    from imgfetch.store.files import OutputDir

    urls = tmp_path / "urls.txt"
    urls.write_text(server.image_urls()[0] + "\n")
    with OutputDir(tmp_path / "out"):
        proc = subprocess.run([sys.executable, "-m", "imgfetch", "get", str(urls), "-o", str(tmp_path / "out"), "-q"],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"imgfetch: error: {tmp_path / 'out'}: another imgfetch run is using this folder"
    assert main(["get", str(urls), "-o", str(tmp_path / "out"), "-q", "--start-method", "fork"]) == 0  # released


def test_file_size_limit_fails_those_urls_and_leaves_no_temporary_file(server, tmp_path):
    import resource

    sizes = {i: len(server.image_bytes(i)) for i in range(20)}
    limit = sorted(sizes.values())[15]  # a few images are larger; the manifest (~10 KB) is not
    urls = tmp_path / "urls.txt"
    urls.write_text("\n".join(server.image_urls()[:20]) + "\n")
    out, manifest = tmp_path / "out", tmp_path / "manifest.jsonl"
    manifest.write_text("")

    def limit_writes() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run([sys.executable, "-m", "imgfetch", "get", str(urls), "-o", str(out), "-q", "--retries", "0",
                           "--start-method", "fork", "--manifest", str(manifest)],
                          capture_output=True, text=True, timeout=60, preexec_fn=limit_writes)
    records = {r["line"]: r for r in read_manifest(manifest)}
    assert proc.returncode == 1, proc.stderr
    assert len(records) == 20 and os.path.getsize(manifest) < limit
    for line, record in records.items():
        if sizes[line - 1] > limit:
            assert record["status"] == "failed" and "File too large" in record["error"]
        else:
            assert record["status"] == "ok"
    assert tree(out) == {r["path"] for r in records.values() if r["status"] == "ok"}


def test_planted_symlink_is_never_followed(server, tmp_path):
    from imgfetch import download

    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "000000001.jpg").symlink_to(outside)
    for overwrite in (False, True):
        result = download([server.image_urls()[0]], out, naming="index", overwrite=overwrite, progress=False,
                          start_method="fork", workers=1, threads=1)[0]
        assert result.status == "failed" and "already there" in result.error
        assert outside.read_text() == "keep me" and (out / "000000001.jpg").is_symlink()


def test_second_ctrl_c_quits_at_once(tmp_path):
    with ImageServer(count=20, latency_ms=3000) as server:
        urls = tmp_path / "urls.txt"
        urls.write_text("\n".join(server.image_urls()) + "\n")
        out = tmp_path / "out"
        proc = cli(urls, out, "-v")
        wait_for(lambda: server.stats.in_flight >= 4, 15)  # downloads are under way
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 130 and time.monotonic() - sent < 2, err
        assert tree(out) <= {"manifest.jsonl"}  # no lock, no temporary folder


def test_a_worker_killed_beside_a_suspect_convicts_nobody(tmp_path):
    """The victim's first worker dies: the victim is retried alone in quarantine. While it runs there,
    a normal worker dies too: its URLs become suspects, but the victim (second strike not reached)
    and every URL beside it still end ok. Only URLs a dead worker held are ever retried."""
    with ImageServer(count=80, latency_ms=150) as server:
        victim = server.url("/img/0.jpg?latency_ms=1500")
        urls = tmp_path / "urls.txt"
        others = server.image_urls()[1:]
        urls.write_text("\n".join([*others[:9], victim, *others[9:]]) + "\n")  # both workers busy before it
        out = tmp_path / "out"
        proc = cli(urls, out, "-v", "--timeout", "5")
        killed: list[int] = []

        def watch() -> None:
            pids: list[int] = []
            originals: list[int] = []
            for line in proc.stderr:
                if not line.startswith("[Process ID]:"):
                    continue
                pid = int(line.split(":", 1)[1].split()[0])
                if pid not in pids:
                    pids.append(pid)
                if line.rstrip().endswith(victim):
                    if not killed:
                        os.kill(pid, signal.SIGKILL)  # strike one for the victim and what it ran beside
                        killed.append(pid)
                        originals = list(pids)  # the pool's first workers (quarantine starts later)
                    elif len(killed) == 1:
                        bystander = next(p for p in originals if p not in killed)
                        os.kill(bystander, signal.SIGKILL)  # a normal worker, while the suspect is in quarantine
                        killed.append(bystander)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        proc.wait(timeout=60)
        watcher.join(timeout=5)
        proc.stderr.close()  # the watcher has read it to its end
        assert len(killed) == 2
        assert proc.returncode == 0
        records = read_manifest(out / "manifest.jsonl")
        assert len(records) == 80 and {r["line"] for r in records} == set(range(1, 81))
        assert all(r["status"] == "ok" for r in records), [r["error"] for r in records if r["status"] != "ok"]
        assert_clean(out, records)
        # Only what the two dead workers held (2 threads + 2 queued each) went over the wire again.
        assert 80 <= server.stats.requests <= 80 + 2 * (2 + 2)


def test_a_stop_records_everything_that_finished(tmp_path):
    """Ctrl-C while slow downloads are in flight: those that finish within the grace period are
    recorded; one that cannot finish is cut short and not recorded; every file on disk has a record."""
    with ImageServer(count=40, latency_ms=100) as server:
        slow = [server.url(f"/img/{i}.{ext}?latency_ms=2500") for i, ext in ((36, "jpg"), (37, "png"))]
        hang = server.url("/hang?seconds=30")
        urls = tmp_path / "urls.txt"
        urls.write_text("\n".join([*slow, hang, *server.image_urls()[:30]]) + "\n")
        out = tmp_path / "out"
        # Three threads per worker: the slow three hold at most two of a worker's, so no fast URL is queued
        # behind them (whichever worker each lands in) and all are done while the slow three are in flight.
        proc = cli(urls, out, "-q", "--timeout", "40", "--max-time", "60", "--threads", "3")
        wait_for(lambda: manifest_lines(out) >= 30, 15)  # the fast ones are done; the slow three are in flight
        os.killpg(proc.pid, signal.SIGINT)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=20)
        stopped_in = time.monotonic() - sent
    assert proc.returncode == 130, err
    records = read_manifest(out / "manifest.jsonl")
    by_line = {r["line"]: r for r in records}
    assert by_line[1]["status"] == by_line[2]["status"] == "ok"  # in flight at the stop, finished in the grace
    assert 3 not in by_line  # the hang was cut short: no record, fetched again next run
    assert len(records) == 32
    assert_clean(out, records)  # every image on disk is in the manifest
    assert 4.5 < stopped_in < 9  # the grace period (5 s), then a prompt end
