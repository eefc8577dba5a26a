"""Shared fixtures: the built-in server on an ephemeral loopback port, checks on output folders, a real Dask
cluster (``cluster``) and an S3 bucket on a moto_server (``moto_server``, ``s3``), both on loopback."""
from __future__ import annotations

import itertools
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imgfetch.server import ImageServer

START_METHODS = ("fork", "spawn", "forkserver")
FAST = dict(timeout=0.5, deadline=2.0, retries=1, backoff=0.01, max_retry_after=0.2, progress=False)


@pytest.fixture(autouse=True)
def library_logging():
    """Each test starts with the library's logging: main() sets the 'imgfetch' logger up for a terminal
    (its own handler, no propagation), which would hide later tests' records from caplog."""
    loggers = [logging.getLogger(name) for name in ("imgfetch", "imgfetch.pids")]
    saved = [(log.handlers[:], log.level, log.propagate) for log in loggers]
    yield
    for log, (handlers, level, propagate) in zip(loggers, saved):
        log.handlers[:], log.propagate = handlers, propagate
        log.setLevel(level)


@pytest.fixture(scope="session")
def server():
    with ImageServer(count=240, seed=7) as srv:
        yield srv


@pytest.fixture()
def fresh_server():
    """A server of its own, for tests that count requests."""
    with ImageServer(count=40, seed=3) as srv:
        yield srv


def read_manifest(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_tars(tars, decode: bool = True) -> list[dict]:
    """Every sample of the tars (a path or a list of paths), read with the webdataset library as a
    dataset's users read them; images decoded by Pillow unless ``decode`` is False."""
    import gc
    import warnings

    import webdataset

    if not tars:
        return []
    with warnings.catch_warnings():
        # The webdataset library (0.2 to 1.0) leaves each tar it has read to the garbage collector to close.
        warnings.simplefilter("ignore", ResourceWarning)
        dataset = webdataset.WebDataset(tars, shardshuffle=False)
        samples = list(dataset.decode("pil") if decode else dataset)
        gc.collect()
    return samples


def wait_for(predicate, seconds: float = 30.0) -> None:
    """Return once ``predicate()`` is true; fail the test if it is not within ``seconds``."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def tree(root: Path) -> set[str]:
    """Every entry under root (files, folders, links), relative, '/'-separated."""
    found = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/"))
    return found


def assert_clean(out: Path, records: list[dict], manifest: str = "manifest.jsonl") -> None:
    """OUT holds only the images of ok/skipped records and the manifest; no temporary or lock file."""
    expected = {manifest} | {r["path"] for r in records if r["status"] in ("ok", "skipped")}
    expected |= {p.rsplit("/", 1)[0] for p in expected if "/" in p}
    assert tree(out) == expected


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A real `dask scheduler` and two `dask worker` processes on loopback (daskcluster.py): its address.

    One per module, not per session: a cluster that ran another module's tests (kills, stops) made the next
    module's tests slower by more than a start costs (measured: test_dask_s3's six tests 52 s against 28 s)."""
    from daskcluster import start_cluster, stop_cluster

    address, procs = None, []
    try:
        address, procs = start_cluster(tmp_path_factory.mktemp("dask"))
        yield address
    finally:
        stop_cluster(procs)


BUCKETS = itertools.count()
# A moto S3 server on an ephemeral loopback port. It prints its port, and stops when its stdin closes (the
# test process ended, however it ended) or after MAX_LIFE_S, whichever comes first. One for the whole session
# (each test has a bucket of its own): its start costs seconds.
MAX_LIFE_S = 3600
MOTO = f"""
import os, sys, threading
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
# get_host_and_port() came after moto 5.0.0 (our lowest); before it, the werkzeug server knows its port
port = server.get_host_and_port()[1] if hasattr(server, "get_host_and_port") else server._server.server_port
print(port, flush=True)
threading.Timer({MAX_LIFE_S}, lambda: os._exit(3)).start()
sys.stdin.read()
server.stop()
os._exit(0)
"""


@pytest.fixture(scope="session")
def moto_server():
    proc = subprocess.Popen([sys.executable, "-c", MOTO], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # its request log is noise here
    try:
        port = int(proc.stdout.readline())  # moto prints it once it listens
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()


@pytest.fixture()
def s3(moto_server, monkeypatch, tmp_path, request):
    """A new bucket on the moto server, the AWS environment pointing at it, and a work folder of the test's own."""
    import fsspec

    from imgfetch.store import remote

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv(remote.CACHE_ENV, str(tmp_path / "cache"))
    bucket = f"test-{next(BUCKETS)}-" + re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir(bucket)
    return fs, bucket
