"""fetcher.Fetcher in-process, against `responses` mocks: retries, redirects, size caps, headers."""
from __future__ import annotations

import gzip

import pytest
import responses

from imgfetch.net.fetcher import Fetcher, ProxyConfig
from imgfetch.options import Options

URL = "http://img.example.com/a.jpg"


def fetcher(**kw) -> Fetcher:
    base = dict(timeout=0.5, deadline=2.0, retries=2, backoff=0.001, max_retry_after=0.05)
    base.update(kw)
    return Fetcher(Options(**base))


@responses.activate
def test_404_is_not_retried():
    responses.get(URL, status=404)
    d = fetcher().fetch(URL)
    assert (d.body, d.error, d.attempts, d.http_status) == (None, "HTTP 404 Not Found", 1, 404)


@responses.activate
@pytest.mark.parametrize("status", [500, 502, 503, 408])
def test_transient_statuses_are_retried(status):
    responses.get(URL, status=status)
    d = fetcher(retries=3).fetch(URL)
    assert d.attempts == 4 and d.error.startswith(f"HTTP {status}")


@responses.activate
def test_429_with_retry_after_then_success():
    responses.get(URL, status=429, headers={"Retry-After": "0"})
    responses.get(URL, body=b"IMG", status=200)
    d = fetcher().fetch(URL)
    assert d.body == b"IMG" and d.attempts == 2 and d.error is None


@responses.activate
def test_redirects_followed_and_refused():
    responses.get(URL, status=302, headers={"Location": "/b.jpg"})
    responses.get("http://img.example.com/b.jpg", body=b"B")
    d = fetcher().fetch(URL)
    assert d.body == b"B" and d.final_url == "http://img.example.com/b.jpg"
    responses.get("http://img.example.com/evil", status=301, headers={"Location": "file:///etc/passwd"})
    d = fetcher().fetch("http://img.example.com/evil")
    assert d.body is None and "redirect to file: refused" in d.error and d.attempts == 1


@responses.activate
def test_too_many_redirects():
    for i in range(5):
        responses.get(f"http://img.example.com/{i}", status=302, headers={"Location": f"/{i + 1}"})
    d = fetcher(max_redirects=3).fetch("http://img.example.com/0")
    assert "too many redirects" in d.error


@responses.activate
def test_content_length_over_cap_refused_before_reading():
    responses.get(URL, body=b"x" * 2000, headers={"Content-Length": "2000"})
    d = fetcher(max_bytes=1000).fetch(URL)
    assert d.error.startswith("too large: Content-Length 2,000 bytes") and d.attempts == 1


@responses.activate
def test_gzip_body_counted_after_decoding():
    responses.get(URL, body=gzip.compress(b"\0" * 5000), headers={"Content-Encoding": "gzip"})
    d = fetcher(max_bytes=4000).fetch(URL)
    assert d.error == "too large: body exceeds --max-bytes 4,000 bytes"
    d = fetcher(max_bytes=6000).fetch(URL)
    assert d.body == b"\0" * 5000


@responses.activate
def test_user_headers_sent_but_not_to_another_host():
    responses.get(URL, status=302, headers={"Location": "http://other.example.org/x.jpg"})
    responses.get("http://other.example.org/x.jpg", body=b"X")
    d = fetcher(headers=(("Authorization", "Bearer t0k"),), user_agent="ua/1").fetch(URL)
    assert d.body == b"X"
    first, second = (c.request.headers for c in responses.calls)
    assert first["Authorization"] == "Bearer t0k" and first["User-Agent"] == "ua/1"
    assert "Authorization" not in second


@responses.activate
def test_connection_error_is_retried_with_readable_message():
    d = fetcher(retries=1).fetch("http://down.example.com/a.jpg")  # responses refuses unknown URLs
    assert d.attempts == 2 and d.error.startswith("connection")


def test_env_proxies_resolved_once_with_no_proxy(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example.com:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.internal.example")
    config = ProxyConfig(None)
    monkeypatch.delenv("HTTP_PROXY")
    assert config.lookup("http", "img.example.com") == {"http": "http://proxy.example.com:3128"}
    assert config.lookup("http", "a.internal.example") is None
    assert config.lookup("http", "localhost") is None
    assert ProxyConfig("http://p.example.com:1").lookup("https", "x.example.com") == {"https": "http://p.example.com:1"}


def test_user_headers_are_dropped_on_a_downgrade_or_another_port_as_requests_does():
    from urllib.parse import urlsplit

    from imgfetch.net.session import drops_user_headers

    def drops(a: str, b: str) -> bool:
        return drops_user_headers(urlsplit(a), urlsplit(b))

    assert drops("https://img.example.com/a", "http://img.example.com/b")        # https -> http
    assert drops("https://img.example.com/a", "https://cdn.example.com/b")       # another host
    assert drops("http://img.example.com:8080/a", "http://img.example.com:9090/b")
    assert not drops("http://img.example.com/a", "https://img.example.com/b")    # the usual upgrade
    assert not drops("https://IMG.example.com/a", "https://img.example.com/b")
