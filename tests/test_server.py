"""Tests for the loopback image server (real sockets on 127.0.0.1)."""
from __future__ import annotations

import hashlib
import io
import json
import socket
import subprocess
import sys
import threading
import time
import gzip
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from PIL import Image

from imgfetch.server import FORMATS, ImageServer

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
