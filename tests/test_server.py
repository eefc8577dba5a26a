"""Tests for the loopback image server (real sockets on 127.0.0.1)."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from PIL import Image

from imgfetch.cli import main
from imgfetch.server import FAULT_KINDS, FORMATS, MAX_LATENCY_S, ImageServer
from imgfetch.server.netmodel import PRESETS, parse_faults

T = 2.0  # client timeout for requests that should answer at once


@pytest.fixture
def server() -> Iterator[ImageServer]:
    with ImageServer(count=12, seed=1) as srv:
        yield srv


def raw(srv: ImageServer, data: bytes, timeout: float = 0.5) -> socket.socket:
    """Connect to the server and send ``data``."""
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    sock.sendall(data)
    return sock


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def read_response(sock: socket.socket, buf: bytes = b"") -> tuple[bytes, bytes, bytes]:
    """Read one Content-Length response: (head, body, leftover bytes)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the head"
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    return head, rest[:length], rest[length:]


# ----- images ------------------------------------------------------------------
def test_images_served_exactly_and_decode(server: ImageServer) -> None:
    urls = server.image_urls()
    with requests.Session() as s:
        for i in range(8):
            fmt, ext, ctype = FORMATS[i % 4]
            assert urls[i] == server.url(f"/img/{i}.{ext}")
            r = s.get(urls[i], timeout=T)
            assert r.status_code == 200
            assert r.headers["Content-Type"] == ctype
            assert int(r.headers["Content-Length"]) == len(r.content)
            assert r.content == server.image_bytes(i)
            with Image.open(io.BytesIO(r.content)) as img:
                assert img.format == fmt
                assert 64 <= img.width <= 320 and 64 <= img.height <= 320
                img.load()


def test_images_deterministic_across_instances_and_processes() -> None:
    a, b, c = ImageServer(count=8, seed=5), ImageServer(count=8, seed=5), ImageServer(count=8, seed=6)
    assert [a.image_bytes(i) for i in range(8)] == [b.image_bytes(i) for i in range(8)]
    assert a.image_bytes(0) != c.image_bytes(0)
    assert a.image_bytes(3) is a.image_bytes(3)  # cached
    code = ("import hashlib; from imgfetch.server import ImageServer; s = ImageServer(count=4, seed=5); "
            "print(hashlib.sha256(b''.join(s.image_bytes(i) for i in range(4))).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20,
                         cwd=Path(__file__).resolve().parents[1], check=True).stdout.strip()
    assert out == hashlib.sha256(b"".join(a.image_bytes(i) for i in range(4))).hexdigest()


def test_urls_txt_and_not_found(server: ImageServer) -> None:
    r = requests.get(server.url("/urls.txt"), timeout=T)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    assert r.text.splitlines() == server.image_urls() and len(server.image_urls()) == 12
    for path in ("/img/12.jpg", "/img/0.png", "/nope", "/img/x.jpg", "/status/abc"):
        assert requests.get(server.url(path), timeout=T).status_code == 404, path
    with pytest.raises(IndexError):
        server.image_bytes(12)


def test_head_request(server: ImageServer) -> None:
    r = requests.head(server.url("/img/1.png"), timeout=T)
    assert r.status_code == 200 and r.content == b""
    assert int(r.headers["Content-Length"]) == len(server.image_bytes(1))


# ----- HTTP/1.1 behaviour -------------------------------------------------------
def test_keep_alive_reuses_one_connection(server: ImageServer) -> None:
    with requests.Session() as s:
        for i in range(6):
            assert s.get(server.image_urls()[i], timeout=T).status_code == 200
    assert server.stats.connections == 1
    assert server.stats.requests == 6


def test_pipelined_requests_and_connection_close(server: ImageServer) -> None:
    req = b"GET /img/0.jpg HTTP/1.1\r\nHost: x\r\n\r\n"
    with raw(server, req + req.replace(b"Host: x", b"Host: x\r\nConnection: close")) as sock:
        head1, body1, rest = read_response(sock)
        head2, body2, rest = read_response(sock, rest)
        assert head1.startswith(b"HTTP/1.1 200") and b"Connection: keep-alive" in head1
        assert b"Connection: close" in head2
        assert body1 == body2 == server.image_bytes(0)
        assert rest == b"" and sock.recv(10) == b""  # server closed
    with raw(server, b"GET /empty HTTP/1.0\r\n\r\n") as sock:  # 1.0 defaults to close
        assert b"Connection: close" in read_all(sock)


def test_garbage_gets_400_and_close(server: ImageServer) -> None:
    for junk in (b"garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET /x HTTP/1.1\r\nno colon\r\n\r\n"):
        with raw(server, junk) as sock:
            assert read_all(sock).startswith(b"HTTP/1.1 400 ")


def test_other_methods_and_bodies(server: ImageServer) -> None:
    post = b"POST /img/0.jpg HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    with raw(server, post + b"GET /empty HTTP/1.1\r\n\r\n") as sock:
        head, _, rest = read_response(sock)
        assert head.startswith(b"HTTP/1.1 405") and b"Allow: GET, HEAD" in head
        head, body, _ = read_response(sock, rest)  # the body was skipped, not parsed
        assert head.startswith(b"HTTP/1.1 200") and body == b""


def test_concurrent_requests_with_latency() -> None:
    with ImageServer(count=20, latency_ms=100) as srv:
        urls = [srv.image_urls()[i % 20] for i in range(200)]
        with ThreadPoolExecutor(max_workers=200) as pool:
            results = list(pool.map(lambda u: requests.get(u, timeout=5), urls))
        assert all(r.status_code == 200 for r in results)
        assert all(r.content == srv.image_bytes(i % 20) for i, r in enumerate(results))
        assert srv.stats.requests == 200 and srv.stats.max_in_flight > 1
        assert srv.stats.in_flight == 0


def test_latency_applied(server: ImageServer) -> None:
    t0 = time.monotonic()
    assert requests.get(server.url("/empty?latency_ms=200"), timeout=T).status_code == 200
    assert time.monotonic() - t0 >= 0.2
    with ImageServer(count=1, latency_ms=200) as slow:
        t0 = time.monotonic()
        assert requests.get(slow.url("/img/0.jpg"), timeout=T).status_code == 200
        assert time.monotonic() - t0 >= 0.2


def test_stats_route_and_reset(server: ImageServer) -> None:
    requests.get(server.url("/img/0.jpg?x=1"), timeout=T)
    requests.get(server.url("/img/0.jpg"), timeout=T)
    data = json.loads(requests.get(server.url("/stats"), timeout=T).text)
    assert data["by_path"]["/img/0.jpg"] == 2 and data["requests"] == 3 and data["in_flight"] == 1
    assert server.stats.by_path["/stats"] == 1
    server.stats.reset()
    assert server.stats.requests == 0 and not server.stats.by_path


# ----- misbehaving routes ----------------------------------------------------------
def test_status_and_retry_after(server: ImageServer) -> None:
    r = requests.get(server.url("/status/429?retry_after=7"), timeout=T)
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    r = requests.get(server.url("/status/500"), timeout=T)
    assert r.status_code == 500 and "Retry-After" not in r.headers
    assert requests.get(server.url("/status/204"), timeout=T).status_code == 204


def test_flaky_counts_per_token(server: ImageServer) -> None:
    url = server.url("/flaky/2/tok/1.png")
    codes = [requests.get(url, timeout=T).status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    assert requests.get(url, timeout=T).content == server.image_bytes(1)
    other = server.url("/flaky/1/tok2/0.jpg?status=500&retry_after=2")
    r = requests.get(other, timeout=T)
    assert r.status_code == 500 and r.headers["Retry-After"] == "2"
    assert requests.get(other, timeout=T).status_code == 200


def test_redirects(server: ImageServer) -> None:
    r = requests.get(server.url("/redirect/3/2.webp"), timeout=T)
    assert r.status_code == 200 and len(r.history) == 3
    assert r.url == server.url("/img/2.webp") and r.content == server.image_bytes(2)
    with pytest.raises(requests.TooManyRedirects):
        requests.get(server.url("/redirect-loop"), timeout=T)
    r = requests.get(server.url("/redirect-to?url=file:///etc/passwd"), timeout=T, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "file:///etc/passwd"


def test_short_body_is_an_error(server: ImageServer) -> None:
    with pytest.raises(requests.RequestException):
        requests.get(server.url("/short/0.jpg"), timeout=T)
    head = b"GET /truncated/0.jpg HTTP/1.1\r\nConnection: close\r\n\r\n"
    with raw(server, head) as sock:
        _, body, _ = read_response(sock)
        assert body == server.image_bytes(0)[:len(server.image_bytes(0)) * 6 // 10]


def test_reset_routes(server: ImageServer) -> None:
    with raw(server, b"GET /reset HTTP/1.1\r\n\r\n") as sock:
        with pytest.raises(ConnectionResetError):
            sock.recv(100)
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url("/reset"), timeout=T)
    with pytest.raises(requests.RequestException):
        requests.get(server.url("/reset-mid/1.png"), timeout=T)


def test_hang_and_drip_are_slow(server: ImageServer) -> None:
    with raw(server, b"GET /hang HTTP/1.1\r\n\r\n", timeout=0.3) as sock:
        with pytest.raises(socket.timeout):
            sock.recv(100)
    with raw(server, b"GET /drip/0.jpg?interval=0.05 HTTP/1.1\r\n\r\n", timeout=0.5) as sock:
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(1000)
        assert f"Content-Length: {len(server.image_bytes(0))}".encode() in buf
        time.sleep(0.2)
        sock.setblocking(False)
        got = len(buf.partition(b"\r\n\r\n")[2]) + len(sock.recv(1000))
        assert 1 <= got <= 10


def test_streaming_routes(server: ImageServer) -> None:
    r = requests.get(server.url("/huge?size=1000000"), timeout=T)
    assert r.headers["Content-Length"] == "1000000" and r.content == bytes(1000000)
    with requests.get(server.url("/endless"), timeout=T, stream=True) as r:
        assert r.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in r.headers
        got = 0
        for chunk in r.iter_content(65536):
            got += len(chunk)
            if got > 1_000_000:
                break
    with requests.get(server.url("/huge"), timeout=T, stream=True) as r:
        assert r.headers["Content-Length"] == str(100 << 20)
        assert r.raw.read(1000) == bytes(1000)


def test_content_routes(server: ImageServer) -> None:
    r = requests.get(server.url("/empty"), timeout=T)
    assert r.status_code == 200 and r.content == b"" and r.headers["Content-Type"] == "image/jpeg"
    r = requests.get(server.url("/gzip/3.gif"), timeout=T)
    assert r.headers["Content-Encoding"] == "gzip" and r.headers["Content-Type"] == "image/gif"
    assert r.content == server.image_bytes(3)  # requests decodes gzip
    r = requests.get(server.url("/html-as-jpeg"), timeout=T)
    assert r.headers["Content-Type"] == "image/jpeg" and r.content.startswith(b"<!DOCTYPE html>")
    r = requests.get(server.url("/as-text/2.webp"), timeout=T)
    assert r.headers["Content-Type"] == "text/plain" and r.content == server.image_bytes(2)
    r = requests.get(server.url("/disposition/0.jpg"), timeout=T)
    assert r.headers["Content-Disposition"] == 'attachment; filename="../../evil.sh"'
    r = requests.get(server.url("/disposition/0.jpg"), params={"name": "a b.png"}, timeout=T)
    assert r.headers["Content-Disposition"] == 'attachment; filename="a b.png"'
    for path in ("/names/..%2F..%2Fetc%2Fpasswd", "/names/%E2%80%AEgpj.exe", "/names/%01%1f",
                 "/names/" + "a" * 300):
        r = requests.get(server.url(path), timeout=T)
        assert r.status_code == 200 and r.content == server.image_bytes(0), path
    # requests normalises dot segments, so send this one raw
    with raw(server, b"GET /names/../../x.jpg HTTP/1.1\r\nConnection: close\r\n\r\n") as sock:
        head, body, _ = read_response(sock)
        assert head.startswith(b"HTTP/1.1 200") and body == server.image_bytes(0)


def test_broken_image_routes(server: ImageServer) -> None:
    r = requests.get(server.url("/corrupt.jpg"), timeout=T)
    assert r.content.startswith(b"\xff\xd8")
    with pytest.raises(Exception):
        with Image.open(io.BytesIO(r.content)) as img:
            img.load()
    r = requests.get(server.url("/bomb.png"), timeout=T)
    assert r.headers["Content-Type"] == "image/png" and len(r.content) < 1000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(r.content))


def test_gzip_bomb(server: ImageServer) -> None:
    with requests.get(server.url("/gzip-bomb"), timeout=5, stream=True) as r:
        assert r.headers["Content-Encoding"] == "gzip"
        compressed = r.raw.read(decode_content=False)
    assert len(compressed) < 1_000_000
    out = gzip.decompress(compressed)  # several gzip members, as servers may send
    assert len(out) == 200 << 20 and not out.strip(b"\0")


# ----- lifecycle ---------------------------------------------------------------
def test_stop_is_bounded_and_idempotent() -> None:
    srv = ImageServer(count=2).start()
    port = srv.port
    hanging = raw(srv, b"GET /hang HTTP/1.1\r\n\r\n", timeout=3)
    idle = raw(srv, b"GET /empty HTTP/1.1\r\n\r\n", timeout=3)
    read_response(idle)
    streaming = raw(srv, b"GET /endless HTTP/1.1\r\n\r\n", timeout=3)
    time.sleep(0.1)
    t0 = time.monotonic()
    srv.stop()
    assert time.monotonic() - t0 < 2
    srv.stop()
    assert srv._thread is not None and not srv._thread.is_alive()
    for sock in (hanging, idle, streaming):
        try:
            read_all(sock)  # returns: the server closed it
        except ConnectionResetError:
            pass
        sock.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


def test_stop_from_another_thread_ends_serve_forever() -> None:
    srv = ImageServer(count=1, port=0)
    runner = threading.Thread(target=srv.serve_forever, daemon=True)
    runner.start()
    assert srv._ready.wait(5)
    assert requests.get(srv.url("/img/0.jpg"), timeout=T).status_code == 200
    srv.stop()
    runner.join(2)
    assert not runner.is_alive()


def test_stop_without_start_and_restart_refused() -> None:
    srv = ImageServer(count=1)
    srv.stop()  # no-op
    with srv:
        assert srv.base_url.startswith("http://127.0.0.1:")
        with pytest.raises(RuntimeError):
            srv.start()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "8.8.8.8", "example.com", "::"])
def test_refuses_non_loopback_host(host: str) -> None:
    with pytest.raises(ValueError):
        ImageServer(host=host)


def test_localhost_is_accepted() -> None:
    with ImageServer(count=1, host="localhost") as srv:
        assert srv.base_url == f"http://127.0.0.1:{srv.port}"


# ----- looking like the internet: latency distribution and fault mix ----------------
def test_latency_distribution_deterministic_and_log_normal() -> None:
    n = 4000
    a = ImageServer(count=n, latency_ms=80, latency_spread=1.0, seed=4)
    b = ImageServer(count=n, latency_ms=80, latency_spread=1.0, seed=4)
    other = ImageServer(count=n, latency_ms=80, latency_spread=1.0, seed=5)
    lat = [a.latency_s(i) for i in range(n)]
    assert lat == [b.latency_s(i) for i in range(n)] == [a.latency_s(i) for i in range(n)]
    assert lat != [other.latency_s(i) for i in range(n)]
    ranked = sorted(lat)
    assert 0.070 < ranked[n // 2] < 0.090  # median 80 ms
    assert 0.65 < ranked[int(n * 0.99)] < 1.0  # p99 = 80 ms * e^2.326 ~ 0.82 s
    assert 0.20 < ranked[int(n * 0.90)] < 0.40  # p90 ~ 0.29 s
    assert len(set(lat)) > n * 0.99  # a spread, not a few values
    fixed = ImageServer(latency_ms=80)
    assert {fixed.latency_s(i) for i in range(100)} == {0.08}
    capped = ImageServer(latency_ms=20_000, latency_spread=3.0)
    assert max(capped.latency_s(i) for i in range(500)) == MAX_LATENCY_S


def test_model_stable_across_processes() -> None:
    srv = ImageServer(latency_ms=50, latency_spread=0.8, faults="realistic", seed=9)
    code = ("from imgfetch.server import ImageServer; "
            "s = ImageServer(latency_ms=50, latency_spread=0.8, faults='realistic', seed=9); "
            "print(repr([(s.latency_s(i), s.fault(i)) for i in range(300)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20,
                         cwd=Path(__file__).resolve().parents[1], check=True).stdout.strip()
    assert out == repr([(srv.latency_s(i), srv.fault(i)) for i in range(300)])


def test_per_image_latency_applied() -> None:
    with ImageServer(count=200, latency_ms=100, latency_spread=1.0, seed=2) as srv:
        fast = next(i for i in range(200) if srv.latency_s(i) < 0.03)
        slow = next(i for i in range(200) if 0.5 < srv.latency_s(i) < 0.9)
        urls = srv.image_urls()
        with requests.Session() as s:
            t0 = time.monotonic()
            assert s.get(urls[slow], timeout=T).content == srv.image_bytes(slow)
            assert time.monotonic() - t0 >= srv.latency_s(slow)
            t0 = time.monotonic()
            assert s.get(urls[fast], timeout=T).status_code == 200
            t_fast = time.monotonic() - t0
            t0 = time.monotonic()
            assert s.get(urls[slow] + "?latency_ms=0", timeout=T).status_code == 200  # override
            t_override = time.monotonic() - t0
            assert max(t_fast, t_override) < srv.latency_s(slow)
            t0 = time.monotonic()  # routes without an image wait the median
            assert s.get(srv.url("/empty"), timeout=T).status_code == 200
            assert time.monotonic() - t0 >= 0.1


def test_fault_shares_within_tolerance() -> None:
    n = 20_000
    srv = ImageServer(count=n, faults="realistic", seed=3)
    got = Counter(srv.fault(i) for i in range(n))
    assert srv.faults == PRESETS["realistic"] and abs(sum(srv.faults.values()) - 0.10) < 1e-9
    for kind, share in PRESETS["realistic"].items():
        sd = (n * share * (1 - share)) ** 0.5
        assert abs(got[kind] - n * share) < 4 * sd, (kind, got[kind])
    assert abs(got[None] - n * 0.9) < 4 * (n * 0.09) ** 0.5
    assert set(got) <= set(FAULT_KINDS) | {None}
    assert [srv.fault(i) for i in range(500)] == [srv.fault(i) for i in range(500)]  # persistent
    assert ImageServer(faults={"500": 1.0}).fault(123) == "500"
    assert all(ImageServer().fault(i) is None for i in range(100))


@pytest.mark.parametrize("spec, expected", [
    ("404=0.03,500=0.02", {"404": 0.03, "500": 0.02}),
    (" HANG = 1.5% , drip=0 ", {"hang": 0.015}),
    ({"404": 0.5, "reset": 0.5}, {"404": 0.5, "reset": 0.5}),
    ("realistic", PRESETS["realistic"]),
    ("none", {}), ("", {}), (None, {}),
])
def test_fault_specs_parse(spec: object, expected: dict[str, float]) -> None:
    assert parse_faults(spec) == expected  # type: ignore[arg-type]
    assert ImageServer(faults=spec).faults == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs, needle", [
    (dict(faults="teapot=0.1"), "unknown kind 'teapot'"),
    (dict(faults="404=1.5"), "share for '404' must be between 0 and 1"),
    (dict(faults={"500": -0.1}), "share for '500' must be between 0 and 1"),
    (dict(faults="404=lots"), "share for '404' is not a number"),
    (dict(faults="404=0.6,hang=0.5"), "sum to 1.1"),
    (dict(faults="404"), "expected KIND=SHARE"),
    (dict(faults="realistic,404=0.1"), "preset 'realistic' cannot be mixed"),
    (dict(faults="404=0.1,404=0.2"), "'404' given twice"),
    (dict(faults="404=nan"), "share for '404' must be between 0 and 1"),
    (dict(latency_spread=-1.0), "latency_spread"),
    (dict(latency_ms=-5.0), "latency_ms"),
    (dict(hang_s=-1.0), "hang_s"),
    (dict(hang_s=500.0), "hang_s"),
    (dict(drip_interval_s=-1.0), "drip_interval_s"),
])
def test_bad_model_arguments_raise(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=re.escape(needle)):
        ImageServer(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["403", "404", "410", "500", "503"])
def test_status_faults_are_persistent(kind: str) -> None:
    with ImageServer(count=4, faults={kind: 1.0}) as srv:
        assert requests.get(srv.url("/urls.txt"), timeout=T).text.splitlines() == srv.image_urls()
        with requests.Session() as s:
            codes = [s.get(u, timeout=T).status_code for u in srv.image_urls() * 2]
        assert codes == [int(kind)] * 8
        assert srv.stats.snapshot()["by_fault"] == {kind: 8}
        assert requests.get(srv.url("/gzip/0.jpg"), timeout=T).status_code == 200  # /img/ only


def test_fault_mix_answers_per_kind() -> None:
    """One server, a mix: every image answers as its fault says."""
    mix = {"404": 0.2, "reset": 0.2, "html": 0.2, "truncated": 0.2}
    with ImageServer(count=40, faults=mix, seed=1) as srv:
        seen = Counter()
        for i, url in enumerate(srv.image_urls()):
            kind = srv.fault(i)
            seen[kind] += 1
            if kind is None:
                assert requests.get(url, timeout=T).content == srv.image_bytes(i)
            elif kind == "404":
                assert requests.get(url, timeout=T).status_code == 404
            elif kind == "reset":
                with pytest.raises(requests.ConnectionError):
                    requests.get(url, timeout=T)
            elif kind == "html":
                r = requests.get(url, timeout=T)
                assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg"
                assert r.content.startswith(b"<!DOCTYPE html>")
            else:
                with pytest.raises(requests.RequestException):  # body short of Content-Length
                    requests.get(url, timeout=T)
        assert all(seen[k] for k in (None, *mix))
        by_fault = json.loads(requests.get(srv.url("/stats"), timeout=T).text)["by_fault"]
        assert by_fault == {k: v for k, v in seen.items() if k is not None}


def test_truncated_fault_promises_more_than_it_sends() -> None:
    with ImageServer(count=1, faults="truncated=1") as srv:
        with raw(srv, b"GET /img/0.jpg HTTP/1.1\r\n\r\n", timeout=2) as sock:
            head, _, body = read_all(sock).partition(b"\r\n\r\n")
        full = len(srv.image_bytes(0))
        assert f"Content-Length: {full}".encode() in head and 0 < len(body) < full


def test_hang_fault_times_out_then_closes() -> None:
    with ImageServer(count=2, faults={"hang": 1.0}, hang_s=1.0) as srv:
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.get(srv.image_urls()[0], timeout=0.3)
        t0 = time.monotonic()
        with raw(srv, b"GET /img/1.png HTTP/1.1\r\n\r\n", timeout=3) as sock:
            assert sock.recv(100) == b""  # nothing answered, then closed
        assert 0.9 <= time.monotonic() - t0 < 3
        t0 = time.monotonic()  # the plain /hang route keeps its ?seconds=
        with raw(srv, b"GET /hang?seconds=0.2 HTTP/1.1\r\n\r\n", timeout=3) as sock:
            assert sock.recv(100) == b""
        assert 0.15 <= time.monotonic() - t0 < 2


def test_drip_fault_is_slow() -> None:
    with ImageServer(count=1, faults="drip=1", drip_interval_s=0.05) as srv:
        with requests.get(srv.image_urls()[0], timeout=T, stream=True) as r:
            assert r.status_code == 200
            assert r.headers["Content-Length"] == str(len(srv.image_bytes(0)))
            t0 = time.monotonic()
            got = b""
            while len(got) < 6:
                got += r.raw.read(1)
            assert time.monotonic() - t0 >= 0.2  # 5 intervals at least
            assert got == srv.image_bytes(0)[:6]


def test_slow_head_route() -> None:
    with ImageServer(count=2) as srv:
        with raw(srv, b"GET /slow-head/0.jpg?interval=0.05 HTTP/1.1\r\n\r\n", timeout=2) as sock:
            time.sleep(0.3)
            sock.setblocking(False)
            got = sock.recv(1000)
            assert got.startswith(b"HTTP/1.1 "[:len(got)]) and 2 <= len(got) <= 10
        t0 = time.monotonic()
        r = requests.get(srv.url("/slow-head/1.png?interval=0.004"), timeout=T)
        assert time.monotonic() - t0 >= 0.3  # ~100 head bytes
        assert r.status_code == 200 and r.content == srv.image_bytes(1)
        assert requests.get(srv.url("/slow-head/1.jpg"), timeout=T).status_code == 404


def test_stop_aborts_fault_slow_paths() -> None:
    srv = ImageServer(count=2, faults={"hang": 0.5, "drip": 0.5}, seed=0, hang_s=120.0).start()
    kinds = {srv.fault(0), srv.fault(1)}
    socks = [raw(srv, f"GET {u[len(srv.base_url):]} HTTP/1.1\r\n\r\n".encode(), timeout=3)
             for u in srv.image_urls()]
    socks.append(raw(srv, b"GET /slow-head/0.jpg?interval=10 HTTP/1.1\r\n\r\n", timeout=3))
    time.sleep(0.2)
    assert srv.stats.in_flight == 3 and kinds <= {"hang", "drip"}
    t0 = time.monotonic()
    srv.stop()
    assert time.monotonic() - t0 < 2
    for sock in socks:
        try:
            read_all(sock)
        except ConnectionResetError:
            pass
        sock.close()


# ----- imgfetch serve ---------------------------------------------------------------
SERVE_LINE = re.compile(r"serving (\d+) images on (http://127\.0\.0\.1:\d+) "
                        r"\(list: \2/urls\.txt\); Ctrl-C stops")


@contextmanager
def serve_process(*args: str) -> Iterator[tuple[str, int]]:
    """Run ``python -m imgfetch serve ARGS``; yield (base URL, image count), then stop it."""
    proc = subprocess.Popen([sys.executable, "-m", "imgfetch", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "no startup line within 30 s"
        line = proc.stdout.readline().rstrip("\n")  # type: ignore[union-attr]
        m = SERVE_LINE.fullmatch(line)
        assert m, line
        yield m[2], int(m[1])
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_cli_serve_with_faults_and_latency() -> None:
    with serve_process("--count", "5", "--faults", "404=1", "--latency-ms", "20",
                       "--latency-spread", "0.5", "--hang-s", "1", "--seed", "3") as (base, count):
        assert count == 5
        urls = requests.get(base + "/urls.txt", timeout=5).text.splitlines()
        assert urls == [f"{base}/img/{i}.{FORMATS[i % 4][1]}" for i in range(5)]
        assert {requests.get(u, timeout=5).status_code for u in urls} == {404}
        assert json.loads(requests.get(base + "/stats", timeout=5).text)["by_fault"] == {"404": 5}


def test_cli_serve_realistic_matches_in_process_model() -> None:
    ref = ImageServer(count=40, faults="realistic", seed=8)
    with serve_process("--count", "40", "--faults", "realistic", "--seed", "8", "--hang-s", "0.2") as (base, _):
        with requests.Session() as s:
            for i in range(40):
                kind = ref.fault(i)
                if kind in ("403", "404", "410", "500", "503"):
                    assert s.get(f"{base}/img/{i}.{FORMATS[i % 4][1]}", timeout=5).status_code == int(kind)
                elif kind is None:
                    r = s.get(f"{base}/img/{i}.{FORMATS[i % 4][1]}", timeout=5)
                    assert r.content == ref.image_bytes(i)


@pytest.mark.parametrize("argv, needle", [
    (["--faults", "teapot=1"], "unknown kind 'teapot'"),
    (["--faults", "404=0.7,500=0.7"], "sum to 1.4"),
    (["--latency-spread", "-1"], "--latency-spread must be between 0 and 5"),
    (["--hang-s", "-2"], "--hang-s must be between 0 and 120"),
    (["--hang-s", "500"], "--hang-s must be between 0 and 120"),
    (["--latency-ms", "61000"], "--latency-ms must be between 0 and 60000"),
    (["--port", "70000"], "--port must be a whole number from 0 to 65535"),
])
def test_cli_serve_bad_values_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    assert main(["serve", "--count", "2", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
