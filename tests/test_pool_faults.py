"""The local pool when its processes die or cannot start, with real processes: nothing finished is
lost, no innocent URL is convicted, and a second Ctrl-C kills nothing that is not ours."""
from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import FAST, assert_clean, read_manifest
from imgfetch import ImgFetchError, download, iter_download
from imgfetch.server import ImageServer

SLOW_OK = dict(FAST, timeout=3.0)
GATE_WAIT_S = 10.0  # the longest a gated initializer waits for its gate (the test opens it long before)
STARTED = 2         # with a folder: the workers that start before the crash (the gated test's --workers)


def _crash_hook(folder: str | None = None) -> None:
    """A test initializer standing in for native code that crashes: a URL with ``crash=now`` kills its
    process as its request goes out; one with ``crash=next`` leaves its process broken (a corrupt
    heap, say), so the next request that process makes kills it. With ``folder``: a process that
    starts after some process crashed waits for the file ``gate`` there, then its initializer fails; and
    ``crash=now`` waits until STARTED processes have started, so a first worker slow to start (under load)
    is not taken for a replacement."""
    import requests.adapters

    if folder is not None and os.path.exists(os.path.join(folder, "crashed")):
        deadline = time.monotonic() + GATE_WAIT_S
        while not os.path.exists(os.path.join(folder, "gate")) and time.monotonic() < deadline:
            time.sleep(0.01)
        raise RuntimeError("no GPU here")
    if folder is not None:  # after the check above: a crash now cannot make this process a replacement
        Path(folder, f"started-{os.getpid()}").touch()
    send = requests.adapters.HTTPAdapter.send
    broken = threading.Event()

    def crashing_send(self, request, *args, **kwargs):
        if broken.is_set() or "crash=now" in request.url:
            if folder is not None:
                deadline = time.monotonic() + GATE_WAIT_S
                while len(glob.glob(os.path.join(folder, "started-*"))) < STARTED and time.monotonic() < deadline:
                    time.sleep(0.01)
                Path(folder, "crashed").touch()
            os._exit(70)
        response = send(self, request, *args, **kwargs)
        if "crash=next" in request.url:
            broken.set()
        return response

    requests.adapters.HTTPAdapter.send = crashing_send


def _no_threads() -> None:
    """A test initializer: this process cannot start threads, as under a low thread limit."""
    def refuse(self, *args, **kwargs):
        raise RuntimeError("can't start new thread")

    threading.Thread.start = refuse


def test_records_read_when_the_pool_gives_up_are_kept(server, tmp_path):
    """Worker A dies on line 1; its replacement's initializer fails while worker B's records wait in
    its pipe, to be read in the same poll as the failure. The run raises the initializer's error
    after B's download still in flight is done, and every image on disk has its record."""
    gate = tmp_path / "gate-folder"
    gate.mkdir()
    latency = {8: 2500}  # B's last URL is still downloading when the failure is read
    slow = [f"{u}?latency_ms={latency.get(line, 500)}" for line, u in enumerate(server.image_urls()[1:25], 2)]
    urls = [server.url("/img/0.jpg?crash=now"), *slow]  # A takes lines 1, 3, 5, 7 and B 2, 4, 6, 8 (turn about)
    out = tmp_path / "out"
    opts = dict(FAST, timeout=5, deadline=8, workers=2, threads=2, start_method="fork")
    line_8 = urlsplit(server.image_urls()[7]).path
    asked_before = server.stats.by_path[line_8]  # the server is the session's: other tests asked for it too
    seen = []
    with pytest.raises(ImgFetchError, match="the worker initializer failed: RuntimeError: no GPU here"):
        for record in iter_download(urls, out, initializer=_crash_hook, initargs=(str(gate),), **opts):
            if not seen:  # A's replacement waits at the gate by now; B has lines 6 and 8 queued or started
                deadline = time.monotonic() + GATE_WAIT_S
                while server.stats.by_path[line_8] == asked_before and time.monotonic() < deadline:
                    time.sleep(0.01)  # the gate opens once line 8 is in flight: the stop that follows cuts nothing of B's
                (gate / "gate").touch()
                time.sleep(1.0)  # meanwhile the replacement fails and B finishes lines 4 and 6
            seen.append(record)
    records = read_manifest(out / "manifest.jsonl")
    assert all(r["status"] == "ok" for r in records)
    assert_clean(out, records)  # every image in OUT has its record
    lines = {r["line"] for r in records}
    assert {2, 4, 6, 8} <= lines  # B's four: before the failure, read with it, and in flight at it
    assert not {1, 3, 5, 7} & lines  # A's, never finished: fetched again next run


def test_a_fresh_quarantine_process_for_each_suspect(server, tmp_path):
    """A worker dies holding six URLs: one that kills its process, one that leaves its process broken
    (the next URL there dies), and four innocent ones. Each is retried alone in a process of its own,
    so the broken process never takes an innocent URL down with it: only the killer is convicted."""
    killer = server.url("/img/0.jpg?crash=now")
    breaker = server.image_urls()[1] + "?crash=next&latency_ms=100"
    innocent = [u + "?latency_ms=300" for u in server.image_urls()[2:6]]
    out = tmp_path / "out"
    results = download([killer, breaker, *innocent, *server.image_urls()[6:12]], out, workers=1, threads=4,
                       start_method="fork", initializer=_crash_hook, **SLOW_OK)
    by_line = {r.line: r for r in results}
    assert by_line[1].status == "failed" and by_line[1].error_kind == "crashed"
    assert "worker crashed" in by_line[1].error
    assert [n for n, r in by_line.items() if r.status != "ok"] == [1], [r.error for r in results]
    assert_clean(out, read_manifest(out / "manifest.jsonl"))


@pytest.mark.parametrize("start_method", ["fork", "forkserver"])
def test_workers_that_cannot_start_their_threads_convict_nobody(server, tmp_path, start_method):
    """Download threads that cannot start are a start-up death: the run gives up with a readable
    error instead of retrying every URL in quarantine and recording it as crashed."""
    out = tmp_path / "out"
    with pytest.raises(ImgFetchError, match="worker processes keep dying as soon as they start: .*"
                                            "can't start new thread.*try fewer --threads"):
        download(server.image_urls()[:6], out, workers=2, threads=2, start_method=start_method,
                 initializer=_no_threads, **FAST)
    assert read_manifest(out / "manifest.jsonl") == []  # no URL convicted: all are fetched next run
    assert_clean(out, [])


def test_a_dead_workers_pid_leaves_the_kill_set(tmp_path):
    from imgfetch.engine.pool import LocalPool
    from imgfetch.options import Options

    pool = LocalPool(Options(workers=2, threads=1, start_method="fork", progress=False), str(tmp_path),
                     str(tmp_path))
    try:
        first = set(pool.worker_pids)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while victim in pool.worker_pids and time.monotonic() < deadline:
            pool.poll(0.05)
        assert victim not in pool.worker_pids  # its PID may be another program's by now
        assert len(pool.worker_pids) == 2 and first - {victim} < pool.worker_pids  # the replacement is in
        assert pool.worker_pids == {w.process.pid for w in pool.workers}
    finally:
        pool.close()
    assert pool.worker_pids == set()


STRANGER_SCRIPT = """
import sys
from imgfetch.engine import pool

stranger = int(sys.argv[1])
original = pool.LocalPool.__init__

def init(self, *args, **kwargs):
    original(self, *args, **kwargs)
    self.worker_pids.add(stranger)  # as a dead worker's PID would be, once another program reuses it

pool.LocalPool.__init__ = init
from imgfetch.cli import main

sys.exit(main(sys.argv[2:]))
"""


def test_a_second_ctrl_c_kills_no_process_that_is_not_ours(tmp_path):
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)  # an unrelated program
    try:
        with ImageServer(count=20, latency_ms=3000) as server:
            urls = tmp_path / "urls.txt"
            urls.write_text("\n".join(server.image_urls()) + "\n")
            proc = subprocess.Popen([sys.executable, "-c", STRANGER_SCRIPT, str(sleeper.pid), "get", str(urls),
                                     "-o", str(tmp_path / "out"), "-q", "--workers", "2", "--threads", "2",
                                     "--start-method", "forkserver"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True)
            deadline = time.monotonic() + 15
            while server.stats.in_flight < 4:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
                time.sleep(0.02)
            os.killpg(proc.pid, signal.SIGINT)
            time.sleep(0.3)
            os.killpg(proc.pid, signal.SIGINT)  # the second: quit at once, killing the workers
            _, err = proc.communicate(timeout=10)
        assert proc.returncode == 130, err
        time.sleep(0.1)
        assert sleeper.poll() is None  # the stranger lives on
    finally:
        sleeper.kill()
        sleeper.wait()
