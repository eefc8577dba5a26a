"""Built-in loopback image server (asyncio, hand-written HTTP/1.1).

Serves deterministic synthetic images plus routes that misbehave on purpose
(errors, redirects, hangs, resets, bombs...) for tests, benchmarks and
``imgfetch serve``. Optionally it "looks like the internet": a per-image
log-normal latency and a persistent per-image fault mix on ``/img/`` (see
``imgfetch.netmodel``). Listens on loopback addresses only; every slow route
is bounded in time.
"""
from __future__ import annotations

import asyncio
import gzip
import io
import ipaddress
import json
import logging
import random
import re
import socket
import struct
import threading
import zlib
from collections import Counter
from http import HTTPStatus
from typing import Any, NamedTuple, Optional
from urllib.parse import parse_qsl, urlsplit

from PIL import Image

from .netmodel import (  # noqa: F401 - FAULT_KINDS, PRESETS re-exported for callers
    FAULT_KINDS, MAX_FAULT_HANG_S, MAX_LATENCY_S, PRESETS, STATUS_FAULTS, FaultSpec, NetModel)

log = logging.getLogger(__name__)

# (Pillow format, extension, Content-Type), chosen by index % 4.
FORMATS = (("JPEG", "jpg", "image/jpeg"), ("PNG", "png", "image/png"),
           ("WEBP", "webp", "image/webp"), ("GIF", "gif", "image/gif"))
CHUNK = 64 * 1024
MAX_HANG_S = 30.0
MAX_STREAM_S = 60.0
SLOW_HEAD_INTERVAL_S = 0.1
MAX_ENDLESS = 2 << 30
MAX_BODY_DISCARD = 1 << 20
STOP_TIMEOUT_S = 5.0
_REASONS = {s.value: s.phrase for s in HTTPStatus}
_VERSIONS = ("HTTP/1.1", "HTTP/1.0")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CTL = re.compile(r"[\x00-\x1f\x7f]")
_IMG = r"(?P<i>\d{1,9})\.(?P<ext>[a-z]{3,4})"
_ROUTES = [(re.compile(p), name) for p, name in (
    (r"/img/" + _IMG, "img"), (r"/urls\.txt", "urls"), (r"/stats", "stats"),
    (r"/status/(?P<code>\d{3})", "status"),
    (r"/flaky/(?P<n>\d{1,9})/(?P<token>[^/]+)/" + _IMG, "flaky"),
    (r"/redirect/(?P<n>\d{1,4})/" + _IMG, "redirect"),
    (r"/redirect-loop", "loop_a"), (r"/redirect-loop-b", "loop_b"),
    (r"/redirect-to", "redirect_to"), (r"/hang", "hang"), (r"/drip/" + _IMG, "drip"),
    (r"/slow-head/" + _IMG, "slow_head"),
    (r"/reset", "reset"), (r"/reset-mid/" + _IMG, "reset_mid"), (r"/short/" + _IMG, "short"),
    (r"/empty", "empty"), (r"/huge", "huge"), (r"/endless", "endless"),
    (r"/gzip/" + _IMG, "gzip"), (r"/gzip-bomb", "gzip_bomb"), (r"/html-as-jpeg", "html"),
    (r"/corrupt\.jpg", "corrupt"), (r"/truncated/" + _IMG, "truncated"),
    (r"/bomb\.png", "bomb_png"), (r"/as-text/" + _IMG, "as_text"),
    (r"/disposition/" + _IMG, "disposition"), (r"/names/.*", "names"))]


class ServerStats:
    """Thread-safe request counters.

    ``by_path`` excludes the query string; ``by_fault`` counts answers of the
    fault mix by kind (a request for a faulty image = one count).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Zero the counters (``in_flight`` stays: it is a current value)."""
        with self._lock:
            self.requests = 0
            self.connections = 0
            self.by_path: Counter[str] = Counter()
            self.by_fault: Counter[str] = Counter()
            self.max_in_flight = self.in_flight

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of all counters, JSON-serialisable."""
        with self._lock:
            return {"requests": self.requests, "connections": self.connections,
                    "in_flight": self.in_flight, "max_in_flight": self.max_in_flight,
                    "by_path": dict(self.by_path), "by_fault": dict(self.by_fault)}

    def _connected(self) -> None:
        with self._lock:
            self.connections += 1

    def _begin(self, path: str) -> None:
        with self._lock:
            self.requests += 1
            self.by_path[path] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _fault(self, kind: str) -> None:
        with self._lock:
            self.by_fault[kind] += 1

    def _end(self) -> None:
        with self._lock:
            self.in_flight -= 1


_Match = re.Match  # type aliases for the route handlers
_Writer = asyncio.StreamWriter


class _BadRequest(Exception):
    pass


class _Request(NamedTuple):
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    keep_alive: bool


class _Resp(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    body: bytes


_Out = Optional[_Resp]


def _resp(status: int, body: bytes = b"", ctype: str = "text/plain; charset=utf-8",
          *extra: tuple[str, str]) -> _Resp:
    return _Resp(status, [("Content-Type", ctype), *extra], body)


def _text(status: int, *extra: tuple[str, str]) -> _Resp:
    body = f"{status} {_REASONS.get(status, 'Unknown')}\n".encode()
    return _resp(status, body, "text/plain; charset=utf-8", *extra)


def _parse_request(head: bytes) -> _Request:
    """Parse request line and headers (``head`` ends with CRLFCRLF)."""
    lines = head.decode("latin-1").lstrip("\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or parts[2] not in _VERSIONS:
        raise _BadRequest(lines[0][:100])
    method, target, version = parts
    if _CTL.search(target):
        raise _BadRequest("control character in target")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name):
            raise _BadRequest(f"bad header line {line[:100]!r}")
        headers[name.lower()] = value.strip()
    if target.startswith("/"):
        path, _, qs = target.partition("?")
    elif target.startswith(("http://", "https://")):
        split = urlsplit(target)
        path, qs = split.path or "/", split.query
    else:
        raise _BadRequest(f"bad target {target[:100]!r}")
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    keep = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
    query = dict(parse_qsl(qs, keep_blank_values=True))
    return _Request(method, path.partition("#")[0], query, headers, keep)


def _head_bytes(status: int, headers: list[tuple[str, str]], keep: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}", "Server: imgfetch-test"]
    lines += [f"{k}: {_CTL.sub('', v)}" for k, v in headers]
    lines.append("Connection: keep-alive" if keep else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "replace")


def _ctype_len(ctype: str, length: int) -> list[tuple[str, str]]:
    return [("Content-Type", ctype), ("Content-Length", str(length))]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png() -> bytes:
    """Tiny valid PNG whose IHDR claims 100000 x 100000 1-bit grey pixels."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def _gzip_bomb(size: int = 200 << 20) -> bytes:
    """gzip of ``size`` zero bytes (~200 KB for 200 MiB).

    One 1 MiB member, repeated (multi-member gzip).
    """
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = comp.compress(bytes(1 << 20)) + comp.flush()
    return member * (size >> 20)


def make_image(seed: int, i: int) -> bytes:
    """Deterministically render image ``i`` (format FORMATS[i % 4])."""
    rng = random.Random(seed * 1_000_003 + i)
    w, h, g = rng.randint(64, 320), rng.randint(64, 320), rng.randint(3, 8)
    base = Image.frombytes("RGB", (g, g), rng.randbytes(g * g * 3)).resize((w, h), Image.BILINEAR)
    nw, nh = (w + 1) // 2, (h + 1) // 2
    noise = Image.frombytes("L", (nw, nh), rng.randbytes(nw * nh)).resize((w, h), Image.NEAREST)
    img = Image.blend(base, noise.convert("RGB"), 0.15)
    fmt, buf = FORMATS[i % 4][0], io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, "JPEG", quality=85)
    elif fmt == "PNG":
        img.quantize(256, method=Image.Quantize.FASTOCTREE).save(buf, "PNG", compress_level=1)
    elif fmt == "WEBP":
        img.save(buf, "WEBP", quality=80, method=0)
    else:
        img.quantize(64, method=Image.Quantize.FASTOCTREE).save(buf, "GIF")
    return buf.getvalue()


def _loopback_host(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"ImageServer only binds loopback IP addresses, not {host!r}") from None
    if not ip.is_loopback:
        raise ValueError(f"refusing to bind non-loopback address {host!r}")
    return str(ip)


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close the connection abruptly with a TCP RST."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


def _route(path: str) -> tuple[str, Optional[re.Match[str]]]:
    """The first route whose pattern matches ``path``, with its match."""
    for pattern, name in _ROUTES:
        m = pattern.fullmatch(path)
        if m:
            return name, m
    return "", None


def _index(m: Optional[re.Match[str]]) -> Optional[int]:
    """The image index a route match names, if any."""
    if m is None or "i" not in m.re.groupindex:
        return None
    return int(m["i"])


def _num(query: dict[str, str], key: str, default: float, lo: float, hi: float) -> float:
    try:
        return min(max(float(query[key]), lo), hi) if key in query else default
    except ValueError:
        return default


class ImageServer:
    """Asyncio HTTP/1.1 image server on a loopback address (see module doc).

    ``latency_ms`` delays every answer; with ``latency_spread`` (sigma) > 0 it is
    the median of a per-image log-normal latency for routes serving image i
    (``latency_s(i)``; median 80 ms with sigma 1.0 gives p99 ~ 0.8 s). Other
    routes wait ``latency_ms``; ``?latency_ms=`` overrides both per request.
    ``faults`` (a kind -> share mapping, ``"404=0.03,hang=0.015"`` or
    ``"realistic"``, ~10 % failures) gives each image index at most one
    persistent fault (``fault(i)``), answered on ``/img/<i>.<ext>`` after the
    latency: 403/404/410/500/503 status; ``hang`` answers nothing for
    ``hang_s`` s then closes; ``drip`` sends the head, then one body byte per
    ``drip_interval_s`` (at most MAX_STREAM_S in all); ``reset`` a TCP RST;
    ``html`` a 200 HTML page labelled image/jpeg; ``truncated`` half the
    body promised by Content-Length, then close. ``seed`` drives images,
    latencies and faults alike.
    """

    def __init__(self, count: int = 100, latency_ms: float = 0.0, latency_spread: float = 0.0,
                 faults: FaultSpec = None, hang_s: float = 60.0, drip_interval_s: float = 1.0,
                 host: str = "127.0.0.1", port: int = 0, seed: int = 0) -> None:
        if not 0.0 <= hang_s <= MAX_FAULT_HANG_S:
            raise ValueError(f"hang_s must be between 0 and {MAX_FAULT_HANG_S:g}, got {hang_s:g}")
        if not 0.0 <= drip_interval_s <= MAX_STREAM_S:
            raise ValueError(f"drip_interval_s must be between 0 and {MAX_STREAM_S:g}, "
                             f"got {drip_interval_s:g}")
        self.model = NetModel(latency_ms, latency_spread, faults, seed)
        self.count, self.latency_ms, self.seed = count, latency_ms, seed
        self.latency_spread, self.faults = latency_spread, dict(self.model.faults)
        self.hang_s, self.drip_interval_s = float(hang_s), float(drip_interval_s)
        self.host, self.port = _loopback_host(host), port
        self.stats = ServerStats()
        self._images: dict[int, bytes] = {}
        self._img_lock = threading.Lock()
        self._flaky: Counter[str] = Counter()
        self._bomb: bytes | None = None
        self._conns: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_evt: asyncio.Event | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None  # set by start()
        self._loop_thread: threading.Thread | None = None  # whichever thread runs the loop
        self._ready, self._done = threading.Event(), threading.Event()
        self._state_lock = threading.Lock()
        self._started = self._stopping = self._shut = False
        self._error: BaseException | None = None

    # ----- public API -------------------------------------------------
    @property
    def base_url(self) -> str:
        if not self.port:
            raise RuntimeError("server not started (ephemeral port unknown)")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def image_urls(self) -> list[str]:
        """``/img/<i>.<ext>`` for every index, faulty ones included."""
        base = self.base_url
        return [f"{base}/img/{i}.{FORMATS[i % 4][1]}" for i in range(self.count)]

    def latency_s(self, i: int) -> float:
        """Seconds the server waits before answering for image ``i`` (deterministic)."""
        return self.model.latency_s(i)

    def fault(self, i: int) -> str | None:
        """The persistent fault of image ``i`` (a FAULT_KINDS entry) or None."""
        return self.model.fault(i)

    def image_bytes(self, i: int) -> bytes:
        """The exact bytes served for image ``i`` (generated once, cached)."""
        if not 0 <= i < self.count:
            raise IndexError(i)
        data = self._images.get(i)
        if data is None:
            data = make_image(self.seed, i)
            with self._img_lock:
                data = self._images.setdefault(i, data)
        return data

    def start(self) -> ImageServer:
        """Run the event loop in a daemon thread; return once listening."""
        self._claim()
        self._thread = threading.Thread(target=self._run, name="imgfetch-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            self.stop()
            raise RuntimeError("image server did not start within 10 s")
        if self._error is not None:
            self._thread.join(STOP_TIMEOUT_S)
            raise self._error
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until KeyboardInterrupt or stop()."""
        self._claim()
        self._run(foreground=True)
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Close listener and connections, wait (bounded) for the loop; idempotent."""
        with self._state_lock:
            if not self._started or self._stopping:
                return
            self._stopping = True
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._request_stop)
            except RuntimeError:  # loop already closed
                pass
        if threading.current_thread() is not self._loop_thread:
            if not self._done.wait(STOP_TIMEOUT_S):
                log.warning("image server did not stop within %.0f s", STOP_TIMEOUT_S)
            if self._thread is not None:
                self._thread.join(0.5)

    def __enter__(self) -> ImageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- event loop ---------------------------------------------------
    def _claim(self) -> None:
        with self._state_lock:
            if self._started:
                raise RuntimeError("ImageServer can only be started once")
            self._started = True

    def _request_stop(self) -> None:
        if self._stop_evt is not None:
            self._stop_evt.set()

    def _run(self, foreground: bool = False) -> None:
        self._loop_thread = threading.current_thread()
        loop = self._loop = asyncio.new_event_loop()
        try:
            main = loop.create_task(self._main())
            try:
                loop.run_until_complete(main)
            except KeyboardInterrupt:
                if not foreground:
                    raise
                log.info("interrupted, shutting down")
                self._request_stop()
                loop.run_until_complete(main if not main.done() else self._shutdown())
        except BaseException as exc:  # noqa: BLE001 - reported to the starter
            self._error = self._error or exc
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    loop.run_until_complete(asyncio.wait(pending, timeout=2))
                loop.run_until_complete(loop.shutdown_default_executor())
                loop.close()
            finally:
                self._ready.set()
                self._done.set()

    async def _main(self) -> None:
        self._stop_evt = asyncio.Event()
        if self._stopping:
            return
        try:
            server = await asyncio.start_server(self._handle_conn, self.host, self.port,
                                                backlog=1024, reuse_address=True)
        except OSError as exc:
            self._error = exc
            return
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        log.info("image server listening on %s (%d images; %s)", self.base_url, self.count,
                 self.model.describe())
        self._ready.set()
        await self._stop_evt.wait()
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self._shut:
            return
        self._shut = True
        if self._server is not None:
            self._server.close()
        tasks = list(self._conns)
        for task, writer in list(self._conns.items()):
            writer.transport.abort()
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        log.info("image server on port %d stopped", self.port)

    # ----- connections --------------------------------------------------
    async def _handle_conn(self, reader: asyncio.StreamReader, writer: _Writer) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns[task] = writer
        self.stats._connected()
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    break  # client closed (possibly mid-request)
                except asyncio.LimitOverrunError:
                    await self._write(writer, "GET", _text(431), False)
                    break
                try:
                    req = _parse_request(head)
                except _BadRequest as exc:
                    log.debug("bad request: %s", exc)
                    await self._write(writer, "GET", _text(400), False)
                    break
                if not await self._dispatch(req, reader, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        except asyncio.CancelledError:
            pass  # shutdown; ending normally avoids 3.11's stream-callback noise
        finally:
            self._conns.pop(task, None)
            if not writer.is_closing():
                writer.close()

    async def _dispatch(self, req: _Request, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> bool:
        """Answer one request; True if the connection may be reused."""
        keep = req.keep_alive
        length = req.headers.get("content-length")
        if "transfer-encoding" in req.headers:
            keep = False
        elif length is not None:
            if not length.isdigit():
                await self._write(writer, req.method, _text(400), False)
                return False
            if int(length) > MAX_BODY_DISCARD:
                keep = False
            elif int(length):
                await reader.readexactly(int(length))
        self.stats._begin(req.path)
        try:
            name, m = _route(req.path)
            delay = self._delay_s(req, m)
            if delay > 0:
                await asyncio.sleep(delay)
            if req.method not in ("GET", "HEAD"):
                resp: _Resp | None = _text(405, ("Allow", "GET, HEAD"))
            elif m is None:
                resp = _text(404)
            else:
                resp = await getattr(self, "_r_" + name)(req, m, writer)
            if resp is None:
                return False  # the route handled (and ended) the connection itself
            log.debug("%s %s -> %d", req.method, req.path, resp.status)
            await self._write(writer, req.method, resp, keep)
            return keep
        finally:
            self.stats._end()

    def _delay_s(self, req: _Request, m: _Match | None) -> float:
        """Latency before answering: per image for image routes, else the median."""
        default = self.latency_ms / 1000
        i = _index(m)
        if i is not None and 0 <= i < self.count:
            default = self.latency_s(i)
        return _num(req.query, "latency_ms", default * 1000, 0.0, MAX_LATENCY_S * 1000) / 1000

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, method: str, resp: _Resp, keep: bool) -> None:
        headers, body = list(resp.headers), resp.body
        if resp.status in (204, 304):
            body = b""
        else:
            headers.append(("Content-Length", str(len(body))))
        head = _head_bytes(resp.status, headers, keep)
        writer.write(head if method == "HEAD" or not body else head + body)
        await writer.drain()

    @staticmethod
    async def _start(writer: asyncio.StreamWriter, req: _Request, status: int,
                     headers: list[tuple[str, str]]) -> bool:
        """Send only a head for a streamed answer; True if a body should follow."""
        writer.write(_head_bytes(status, headers, False))
        await writer.drain()
        return req.method != "HEAD"

    # ----- routes ---------------------------------------------------------
    def _image(self, m: _Match) -> tuple[bytes, str] | None:
        i = int(m["i"])
        if not 0 <= i < self.count or m["ext"] != FORMATS[i % 4][1]:
            return None
        return self.image_bytes(i), FORMATS[i % 4][2]

    def _img_resp(self, m: _Match, *extra: tuple[str, str], ctype: str | None = None) -> _Resp:
        found = self._image(m)
        return _resp(200, found[0], ctype or found[1], *extra) if found else _text(404)

    async def _r_img(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        found = self._image(m)
        kind = self.fault(int(m["i"])) if found is not None else None
        if kind is None:
            return self._img_resp(m)
        self.stats._fault(kind)
        log.debug("%s %s: fault %s", req.method, req.path, kind)
        if kind in STATUS_FAULTS:
            return _text(int(kind))
        return await getattr(self, "_fault_" + kind)(req, m, w)

    # Fault answers for /img/<i>: each ends by itself within a bounded time.
    async def _fault_hang(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        await asyncio.sleep(self.hang_s)
        return None

    async def _fault_drip(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        await self._drip(req, m, w, self.drip_interval_s)
        return None

    async def _fault_reset(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        _rst(w)
        return None

    async def _fault_html(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        return await self._r_html(req, m, w)

    async def _fault_truncated(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        await self._half(req, m, w)
        return None  # the caller closes cleanly (FIN) short of Content-Length

    async def _r_urls(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        return _resp(200, "".join(u + "\n" for u in self.image_urls()).encode())

    async def _r_stats(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        return _resp(200, json.dumps(self.stats.snapshot()).encode(), "application/json")

    async def _r_status(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        code = int(m["code"])
        if not 200 <= code <= 599:
            return _text(400)
        ra = req.query.get("retry_after")
        return _text(code, *([("Retry-After", ra)] if ra is not None else []))

    async def _r_flaky(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        self._flaky[m["token"]] += 1
        if self._flaky[m["token"]] > int(m["n"]):
            return self._img_resp(m)
        code = int(_num(req.query, "status", 503, 200, 599))
        ra = req.query.get("retry_after")
        return _text(code, *([("Retry-After", ra)] if ra is not None else []))

    async def _r_redirect(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        n, name = int(m["n"]), f"{m['i']}.{m['ext']}"
        if n == 0 or self._image(m) is None:
            return self._img_resp(m)
        target = f"/img/{name}" if n == 1 else f"/redirect/{n - 1}/{name}"
        return _text(302, ("Location", self.url(target)))

    async def _r_loop_a(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        return _text(302, ("Location", self.url("/redirect-loop-b")))

    async def _r_loop_b(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        return _text(302, ("Location", self.url("/redirect-loop")))

    async def _r_redirect_to(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        target = req.query.get("url")
        if not target or _CTL.search(target):
            return _text(400)
        return _text(302, ("Location", target))

    async def _r_hang(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        await asyncio.sleep(_num(req.query, "seconds", MAX_HANG_S, 0.0, MAX_HANG_S))
        return None

    async def _r_drip(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        if self._image(m) is None:
            return _text(404)
        await self._drip(req, m, w, _num(req.query, "interval", 1.0, 0.0, MAX_STREAM_S))
        return None

    async def _drip(self, req: _Request, m: _Match, w: _Writer, interval: float) -> None:
        """A valid head, then the body one byte per ``interval`` s (MAX_STREAM_S in all)."""
        found = self._image(m)
        assert found is not None
        data, ctype = found

        async def drip() -> None:
            if await self._start(w, req, 200, _ctype_len(ctype, len(data))):
                for k in range(len(data)):
                    if k:
                        await asyncio.sleep(interval)
                    w.write(data[k:k + 1])
                    await w.drain()
        await self._bounded(drip())

    async def _r_slow_head(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        """The head one byte per ``?interval=`` s, then the body at once (MAX_STREAM_S in all)."""
        found = self._image(m)
        if found is None:
            return _text(404)
        data, ctype = found
        interval = _num(req.query, "interval", SLOW_HEAD_INTERVAL_S, 0.0, MAX_STREAM_S)
        head = _head_bytes(200, _ctype_len(ctype, len(data)), False)

        async def slow() -> None:
            for k in range(len(head)):
                if k:
                    await asyncio.sleep(interval)
                w.write(head[k:k + 1])
                await w.drain()
            if req.method != "HEAD":
                w.write(data)
                await w.drain()
        await self._bounded(slow())
        return None

    async def _r_reset(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        _rst(w)
        return None

    async def _half(self, req: _Request, m: re.Match[str], w: asyncio.StreamWriter) -> bool:
        found = self._image(m)
        if found is None:
            await self._write(w, req.method, _text(404), False)
            return False
        data, ctype = found
        if await self._start(w, req, 200, _ctype_len(ctype, len(data))):
            w.write(data[:len(data) // 2])
            await w.drain()
        return True

    async def _r_reset_mid(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        if await self._half(req, m, w):
            await asyncio.sleep(0.05)  # let the half body leave before the RST
            _rst(w)
        return None

    async def _r_short(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        await self._half(req, m, w)
        return None  # the caller closes cleanly (FIN)

    async def _r_empty(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        return _resp(200, b"", "image/jpeg")

    async def _r_huge(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        size = int(_num(req.query, "size", 100 << 20, 0, 1 << 50))

        async def stream() -> None:
            if await self._start(w, req, 200, _ctype_len("image/jpeg", size)):
                zeros, left = bytes(CHUNK), size
                while left > 0 and not w.is_closing():
                    w.write(zeros if left >= CHUNK else zeros[:left])
                    left -= CHUNK
                    await w.drain()
        await self._bounded(stream())
        return None

    async def _r_endless(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        async def stream() -> None:
            chunked = [("Content-Type", "image/jpeg"), ("Transfer-Encoding", "chunked")]
            if await self._start(w, req, 200, chunked):
                chunk, sent = b"%x\r\n%s\r\n" % (CHUNK, bytes(CHUNK)), 0
                while sent < MAX_ENDLESS and not w.is_closing():
                    w.write(chunk)
                    sent += CHUNK
                    await w.drain()
        await self._bounded(stream())
        return None  # closed without the terminating chunk

    @staticmethod
    async def _bounded(coro: Any) -> None:
        try:
            await asyncio.wait_for(coro, MAX_STREAM_S)
        except asyncio.TimeoutError:
            pass

    async def _r_gzip(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        found = self._image(m)
        if found is None:
            return _text(404)
        return _resp(200, gzip.compress(found[0], mtime=0), found[1], ("Content-Encoding", "gzip"))

    async def _r_gzip_bomb(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        if self._bomb is None:
            self._bomb = await asyncio.get_running_loop().run_in_executor(None, _gzip_bomb)
        return _resp(200, self._bomb, "image/jpeg", ("Content-Encoding", "gzip"))

    async def _r_html(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        html = (b"<!DOCTYPE html>\n<html><head><title>Not an image</title></head>"
                b"<body>nope</body></html>\n")
        return _resp(200, html, "image/jpeg")

    async def _r_corrupt(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        garbage = random.Random(self.seed).randbytes(2048)
        return _resp(200, b"\xff\xd8\xff\xe0" + garbage, "image/jpeg")

    async def _r_truncated(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        found = self._image(m)
        return _resp(200, found[0][:len(found[0]) * 6 // 10], found[1]) if found else _text(404)

    async def _r_bomb_png(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        return _resp(200, _bomb_png(), "image/png")

    async def _r_as_text(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        return self._img_resp(m, ctype="text/plain")

    async def _r_disposition(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        name = req.query.get("name", "../../evil.sh")
        return self._img_resp(m, ("Content-Disposition", f'attachment; filename="{name}"'))

    async def _r_names(self, req: _Request, m: _Match, w: _Writer) -> _Out:
        return _resp(200, self.image_bytes(0), FORMATS[0][2]) if self.count else _text(404)
