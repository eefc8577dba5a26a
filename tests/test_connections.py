"""Connections follow hosts: idle ones kept by one budget over all hosts (so a list over many hosts
does not reconnect), TLS sessions resumed, and the process's limits left alone by fetch()."""
from __future__ import annotations

import resource
import socket
import uuid
from pathlib import Path

import fake_dns
from imgfetch import download, fetch
from imgfetch.net.adapter import WatchedAdapter
from imgfetch.net.fetcher import Fetcher
from imgfetch.net.limits import idle_budget
from imgfetch.options import Options
from tlsserver import TLSServer

DATA = Path(__file__).parent / "data"
HOSTS = 100  # more than the 64 hosts a process used to keep connections to


def test_a_list_over_many_hosts_opens_one_connection_per_host(fresh_server, tmp_path):
    tag = uuid.uuid4().hex[:8]
    port, paths = fresh_server.port, [fresh_server.images.path(i) for i in range(fresh_server.count)]
    # Three rounds over every host: each host comes back after all the others have had a turn.
    urls = [f"http://h{n}-{tag}.test:{port}{paths[(n + k) % len(paths)]}?k={k}" for k in range(3) for n in range(HOSTS)]
    results = download(urls, tmp_path / "o", workers=1, threads=4, initializer=fake_dns.install, progress=False)
    assert [r.status for r in results] == ["ok"] * len(urls)
    assert fresh_server.stats.snapshot()["connections"] <= HOSTS + 8  # not one per URL: hosts keep theirs


def test_past_the_budget_the_connection_idle_longest_is_closed(fresh_server, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", fake_dns.getaddrinfo)
    fetcher = Fetcher(Options(threads=2))
    fetcher.adapter = WatchedAdapter(idle_budget=3, per_host=2)
    hosts = [f"{name}-{uuid.uuid4().hex[:8]}.test" for name in "abcd"]  # four names for one server
    url = f"http://{{}}:{fresh_server.port}{fresh_server.images.path(0)}"
    for host in hosts:
        assert fetcher.fetch(url.format(host)).error is None
    assert len(fetcher.adapter.idle) == 3
    for host in hosts[1:]:  # the three used last kept theirs ...
        assert fetcher.fetch(url.format(host)).error is None
    assert fresh_server.stats.snapshot()["connections"] == 4
    assert fetcher.fetch(url.format(hosts[0])).error is None  # ... the first lost its own
    assert fresh_server.stats.snapshot()["connections"] == 5


def test_the_budget_comes_from_the_open_files_limit():
    assert idle_budget(threads=128, limit=1_000_000) == 1024  # at most MAX_IDLE, whatever the limit
    assert idle_budget(threads=128, limit=1024) == 1024 - 64 - 2 * 128  # what the threads leave spare
    assert idle_budget(threads=8, limit=100) == 100 - 64 - 16


def test_fetch_leaves_the_open_files_limit_alone(server, tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 1000) - 1
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        assert fetch(server.image_urls()[0], tmp_path).status == "ok"
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (lowered, hard)  # a library changes no process limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_tls_sessions_are_resumed_on_new_connections(server, tmp_path):
    with TLSServer(server.image_bytes(0), host="localhost") as tls:
        urls = [f"{tls.base}/{i}.jpg" for i in range(8)]
        results = download(urls, tmp_path / "o", workers=1, threads=2, ca_bundle=str(DATA / "selfsigned.pem"),
                           progress=False)
        assert [r.status for r in results] == ["ok"] * 8
        assert len(tls.resumed) == 8 and sum(tls.resumed) >= 6  # a full handshake only until a session is known
