"""Shared fixtures: the built-in server on an ephemeral loopback port, and checks on output folders."""
from __future__ import annotations

import json
import logging
import os
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
