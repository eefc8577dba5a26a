"""DNS inside the URL's budget: lookups cut at --max-time, cached per process, several addresses
tried within one connect timeout, and a summary that says when the resolver is the problem."""
from __future__ import annotations

import socket
import time
import uuid

import pytest

import fake_dns
from conftest import FAST
from imgfetch import fetch
from imgfetch.cli import main


@pytest.fixture()
def names(monkeypatch):
    """``*.test`` names resolved by fake_dns in this process; a fresh suffix per test, so no answer is cached."""
    monkeypatch.setattr(socket, "getaddrinfo", fake_dns.getaddrinfo)
    fake_dns.LOOKED_UP.clear()
    return f"{uuid.uuid4().hex[:8]}.test"


def test_a_resolver_that_never_answers_is_cut_at_max_time(server, tmp_path, names):
    started = time.monotonic()
    result = fetch(f"http://never-{names}:{server.port}/img/0.jpg", tmp_path, timeout=5.0, max_time=1.0, retries=3)
    took = time.monotonic() - started
    assert (result.status, result.error_kind) == ("failed", "dns")
    assert result.error == f"DNS lookup of never-{names} timed out after 1.0 s"
    assert 0.9 < took < 1.5


def test_a_lookup_is_cut_at_the_connect_timeout_and_retried_within_max_time(server, tmp_path, names):
    started = time.monotonic()
    result = fetch(f"http://never-{names}:{server.port}/img/0.jpg", tmp_path, timeout=0.3, max_time=1.2, retries=5,
                   backoff=0.01)
    assert time.monotonic() - started < 1.6
    assert result.error_kind == "dns" and result.attempts >= 2
    assert fake_dns.LOOKED_UP == [f"never-{names}"]  # every attempt waited on the one lookup in progress


def test_a_missing_host_is_looked_up_once_and_not_found(server, tmp_path, names):
    results = [fetch(f"http://gone-{names}:{server.port}/img/{i}.jpg", tmp_path, **FAST) for i in range(5)]
    assert {(r.error, r.error_kind) for r in results} == {("host not found", "dns")}
    assert fake_dns.LOOKED_UP == [f"gone-{names}"]  # the failure is cached (briefly)


def test_a_resolver_failing_now_is_retried_and_said_so(server, tmp_path, names):
    result = fetch(f"http://again-{names}:{server.port}/img/0.jpg", tmp_path, **{**FAST, "retries": 2})
    assert (result.error, result.error_kind) == ("DNS lookup failed: temporary failure in name resolution", "dns")
    assert result.attempts == 3  # unlike a name that does not exist, this may pass


def test_answers_are_cached_per_process(server, tmp_path, names):
    urls = [f"http://h{i % 2}-{names}:{server.port}{server.images.path(i)}" for i in range(12)]
    results = [fetch(url, tmp_path, **FAST) for url in urls]  # a new connection each: fetch() keeps none
    assert [r.status for r in results] == ["ok"] * 12
    assert sorted(fake_dns.LOOKED_UP) == [f"h0-{names}", f"h1-{names}"]


def test_real_names_and_addresses_still_resolve(server, tmp_path):
    for host in ("localhost", "127.0.0.1"):
        assert fetch(f"http://{host}:{server.port}{server.images.path(1)}", tmp_path, **FAST).status == "ok"


class Blackhole:
    """A loopback address that drops connection attempts (a full listen queue), like a firewalled IPv6 address."""

    def __init__(self, address: str, port: int) -> None:
        self.listener = socket.create_server((address, port), backlog=0)
        self.filler = socket.create_connection((address, port), timeout=1)  # takes the only place in the queue

    def __enter__(self) -> "Blackhole":
        return self

    def __exit__(self, *exc: object) -> None:
        self.filler.close()
        self.listener.close()


def test_a_dead_address_first_costs_a_fraction_of_the_connect_timeout(server, tmp_path, names):
    host = f"dual-{names}"
    fake_dns.ADDRESSES[host] = ["127.0.0.2", "127.0.0.1"]
    fake_dns.ADDRESSES[f"dead-{names}"] = ["127.0.0.2", "127.0.0.3"]
    try:
        with Blackhole("127.0.0.2", server.port), Blackhole("127.0.0.3", server.port):
            started = time.monotonic()
            result = fetch(f"http://{host}:{server.port}{server.images.path(2)}", tmp_path, timeout=2.0, max_time=5.0)
            assert result.status == "ok"
            assert time.monotonic() - started < 1.0  # not the whole --timeout on the dead address first
            started = time.monotonic()
            dead = fetch(f"http://dead-{names}:{server.port}/img/0.jpg", tmp_path, timeout=0.6, max_time=5.0,
                         retries=0)
            assert (dead.error, dead.error_kind) == ("timed out connecting (no answer in 0.6 s)", "timeout")
            assert time.monotonic() - started < 1.0  # one connect timeout for both addresses, not one each
    finally:
        fake_dns.ADDRESSES.pop(host, None)
        fake_dns.ADDRESSES.pop(f"dead-{names}", None)


def test_through_a_proxy_the_proxy_resolves_the_target(server, tmp_path, names):
    # The built-in server answers absolute-form requests, so it stands in for an HTTP proxy here.
    result = fetch(f"http://target-{names}{server.images.path(3)}", tmp_path, proxy=server.base_url, **FAST)
    assert result.status == "ok"
    assert fake_dns.LOOKED_UP == []


def test_the_summary_says_when_dns_is_the_problem(server, tmp_path, names, capsys):
    urls = tmp_path / "urls.txt"
    good = server.image_urls()[:18]
    urls.write_text("".join(u + "\n" for u in good) + f"http://gone-{names}/a.jpg\nhttp://gone-{names}/b.jpg\n")
    assert main(["get", str(urls), "-o", str(tmp_path / "o"), "--start-method", "fork", "--workers", "1",
                 "--threads", "4", "--retries", "0"]) == 1
    err = capsys.readouterr().err
    assert "DNS: 2 of 20 URLs (10%) failed to look up their host, which usually means the resolver is struggling" in err
    assert "a local caching resolver (systemd-resolved, dnsmasq, unbound) or fewer --threads helps" in err


def test_no_dns_advice_for_one_dead_host_among_many(server, tmp_path, names, capsys):
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(u + "\n" for u in server.image_urls()[:39]) + f"http://gone-{names}/a.jpg\n")
    assert main(["get", str(urls), "-o", str(tmp_path / "o"), "--start-method", "fork", "--workers", "1",
                 "--threads", "4", "--retries", "0"]) == 1
    err = capsys.readouterr().err
    assert "1 × host not found" in err
    assert "DNS:" not in err
