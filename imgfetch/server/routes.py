"""Which path gives what: the route table and one handler per route."""
from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import json
import logging
import random
import re
from collections import Counter
from collections.abc import Callable
from typing import Optional
from urllib.parse import unquote_to_bytes

from . import faults
from .netmodel import MAX_LATENCY_S, NetModel
from .stats import ServerStats
from .synth import FORMATS, ImageSet, bomb_png, gzip_bomb, requality
from .wire import CTL, MAX_STREAM_S, Answer, Request, query_num, resp, rst, text

log = logging.getLogger(__name__)

DRIP_INTERVAL_S = 1.0          # default pause between body bytes on /drip/
FLAKY_STATUS = 503             # what /flaky/ answers before it gives the image
MIN_STATUS, MAX_STATUS = 200, 599  # codes /status/ and /flaky/ may answer
HUGE_SIZE = 100 << 20          # default body size of /huge (100 MiB)
MAX_HUGE_SIZE = 1 << 50        # largest ?size= that /huge accepts
CORRUPT_BYTES = 2048           # random bytes after the JPEG signature on /corrupt.jpg
TRUNCATED_TENTHS = 6           # /truncated/ serves this many tenths of the image
JPEG_START = b"\xff\xd8\xff\xe0"  # SOI + APP0: the start of a JFIF file
MAX_JPEG_QUALITY = 95          # highest quality /requality/ takes (Pillow advises no more)
_SETTABLE = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,63}")  # header names /headers/ sets from its query
_FRAMING = ("content-type", "content-length", "transfer-encoding", "connection", "content-encoding")
_IMG = r"(?P<i>\d{1,9})\.(?P<ext>[a-z]{3,4})"
_ROUTES = [(re.compile(p), name) for p, name in (
    (r"/img/" + _IMG, "img"), (r"/urls\.txt", "urls"), (r"/stats", "stats"),
    (r"/status/(?P<code>\d{3})", "status"),
    (r"/flaky/(?P<n>\d{1,9})/(?P<token>[^/]+)/" + _IMG, "flaky"),
    (r"/redirect/(?P<n>\d{1,4})/" + _IMG, "redirect"),
    (r"/redirect-loop(?P<b>-b)?", "loop"),
    (r"/redirect-to", "redirect_to"), (r"/hang", "hang"), (r"/drip/" + _IMG, "drip"),
    (r"/basic-auth/(?P<user>[^/]*)/(?P<password>[^/]*)/" + _IMG, "basic_auth"),
    (r"/slow-head/" + _IMG, "slow_head"),
    (r"/reset", "reset"), (r"/reset-mid/" + _IMG, "reset_mid"), (r"/short/" + _IMG, "short"),
    (r"/empty", "empty"), (r"/huge", "huge"), (r"/endless", "endless"),
    (r"/gzip/" + _IMG, "gzip"), (r"/gzip-bomb", "gzip_bomb"), (r"/html-as-jpeg", "html"),
    (r"/corrupt\.jpg", "corrupt"), (r"/truncated/" + _IMG, "truncated"),
    (r"/bomb\.png", "bomb_png"), (r"/as-text/" + _IMG, "as_text"),
    (r"/disposition/" + _IMG, "disposition"), (r"/headers/" + _IMG, "headers"),
    (r"/requality/(?P<q>\d{1,3})/" + _IMG, "requality"), (r"/names/.*", "names"),
    (r"/varying/(?P<i>\d{1,9})\.(?P<ext>jpg)", "varying"))]

Match = re.Match
Writer = asyncio.StreamWriter


def _route(path: str) -> tuple[str, Optional[re.Match[str]]]:
    """The first route whose pattern matches ``path``, with its match."""
    return next(((name, m) for pattern, name in _ROUTES if (m := pattern.fullmatch(path))), ("", None))


def _credentials(req: Request) -> bytes | None:
    """The ``user:password`` bytes of a Basic Authorization header, None without one."""
    scheme, _, token = req.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(token.strip(), validate=True)
    except binascii.Error:
        return None


def _query_headers(req: Request) -> list[tuple[str, str]]:
    """Response headers a query names (/headers/, /drip/): ``?x-robots-tag=noai``; ``|`` in a value repeats
    the header. Names are letters, digits and '-' (so ``latency_ms`` is none), never framing headers."""
    return [(name, part) for name, value in req.query.items() if _SETTABLE.fullmatch(name)
            and name.lower() not in _FRAMING and not CTL.search(value) for part in value.split("|")]


def _retry_after(req: Request) -> list[tuple[str, str]]:
    """A Retry-After header echoing ``?retry_after=``, if given."""
    ra = req.query.get("retry_after")
    return [("Retry-After", ra)] if ra is not None else []


class Routes:
    """Answers requests for one server: ``answer`` waits the latency, then runs the route's handler.

    Handlers are ``_r_<route name>(req, m, w)``; one returns the response to
    send, or None when it wrote (and ended) the connection itself.
    """

    def __init__(self, images: ImageSet, model: NetModel, stats: ServerStats, url: Callable[[str], str],
                 hang_s: float, drip_interval_s: float) -> None:
        self.images, self.model, self.stats, self.url = images, model, stats, url
        self.hang_s, self.drip_interval_s = hang_s, drip_interval_s
        self._flaky: Counter[str] = Counter()
        self._bomb: bytes | None = None
        self._varying = 0

    async def answer(self, req: Request, w: Writer) -> Answer:
        """The answer to ``req`` after its latency (None: the connection was ended)."""
        name, m = _route(req.path)
        delay = self._delay_s(req, m)
        if delay > 0:
            await asyncio.sleep(delay)
        if req.method not in ("GET", "HEAD"):
            return text(405, ("Allow", "GET, HEAD"))
        if m is None:
            return text(404)
        return await getattr(self, "_r_" + name)(req, m, w)

    def _delay_s(self, req: Request, m: Match | None) -> float:
        """Latency before answering: per image for image routes, else the median."""
        default = self.model.latency_ms / 1000
        i = int(m["i"]) if m is not None and "i" in m.re.groupindex else None
        if i is not None and 0 <= i < self.images.count:
            default = self.model.latency_s(i)
        return query_num(req.query, "latency_ms", default * 1000, 0.0, MAX_LATENCY_S * 1000) / 1000

    def _image(self, m: Match) -> faults.Found:
        return self.images.lookup(int(m["i"]), m["ext"])

    def _img_resp(self, m: Match, *extra: tuple[str, str], ctype: str | None = None,
                  change: Callable[[bytes], bytes] | None = None) -> Answer:
        """The image (its bytes ``change``d, if given), or 404 when there is none."""
        found = self._image(m)
        if found is None:
            return text(404)
        return resp(200, change(found[0]) if change else found[0], ctype or found[1], *extra)

    async def _r_img(self, req: Request, m: Match, w: Writer) -> Answer:
        found = self._image(m)
        kind = self.model.fault(int(m["i"])) if found is not None else None
        if kind is None:
            return self._img_resp(m)
        self.stats.tally("by_fault", kind)
        log.debug("%s %s: fault %s", req.method, req.path, kind)
        return await faults.answer_fault(kind, w, req, found, self.hang_s, self.drip_interval_s)

    async def _r_urls(self, req: Request, m: Match, w: Writer) -> Answer:
        urls = [self.url(self.images.path(i)) for i in range(self.images.count)]
        return resp(200, "".join(u + "\n" for u in urls).encode())

    async def _r_stats(self, req: Request, m: Match, w: Writer) -> Answer:
        return resp(200, json.dumps(self.stats.snapshot()).encode(), "application/json")

    async def _r_status(self, req: Request, m: Match, w: Writer) -> Answer:
        code = int(m["code"])
        if not MIN_STATUS <= code <= MAX_STATUS:
            return text(400)
        return text(code, *_retry_after(req))

    async def _r_flaky(self, req: Request, m: Match, w: Writer) -> Answer:
        self._flaky[m["token"]] += 1
        if self._flaky[m["token"]] > int(m["n"]):
            return self._img_resp(m)
        code = int(query_num(req.query, "status", FLAKY_STATUS, MIN_STATUS, MAX_STATUS))
        return text(code, *_retry_after(req))

    async def _r_redirect(self, req: Request, m: Match, w: Writer) -> Answer:
        n, name = int(m["n"]), f"{m['i']}.{m['ext']}"
        if n == 0 or self._image(m) is None:
            return self._img_resp(m)
        target = f"/img/{name}" if n == 1 else f"/redirect/{n - 1}/{name}"
        return text(302, ("Location", self.url(target)))

    async def _r_loop(self, req: Request, m: Match, w: Writer) -> Answer:
        return text(302, ("Location", self.url("/redirect-loop" if m["b"] else "/redirect-loop-b")))

    async def _r_redirect_to(self, req: Request, m: Match, w: Writer) -> Answer:
        target = req.query.get("url")
        if not target or CTL.search(target):
            return text(400)
        return text(302, ("Location", target))

    async def _r_basic_auth(self, req: Request, m: Match, w: Writer) -> Answer:
        """The image for Basic credentials USER:PASSWORD (percent-decoded from the path), else 401."""
        given = _credentials(req)
        wanted = unquote_to_bytes(m["user"]) + b":" + unquote_to_bytes(m["password"])
        outcome = "none" if given is None else "right" if given == wanted else "wrong"
        self.stats.tally("by_auth", outcome)
        if outcome != "right":
            return text(401, ("WWW-Authenticate", 'Basic realm="imgfetch"'))
        return self._img_resp(m)

    async def _r_hang(self, req: Request, m: Match, w: Writer) -> Answer:
        return await faults.hang(query_num(req.query, "seconds", faults.MAX_HANG_S, 0.0, faults.MAX_HANG_S))

    async def _r_drip(self, req: Request, m: Match, w: Writer) -> Answer:
        found = self._image(m)
        if found is None:
            return text(404)
        interval = query_num(req.query, "interval", DRIP_INTERVAL_S, 0.0, MAX_STREAM_S)
        await faults.drip(w, req, found, interval, _query_headers(req),
                          length=req.query.get("close") != "1")  # ?close=1: no length
        return None

    async def _r_slow_head(self, req: Request, m: Match, w: Writer) -> Answer:
        found = self._image(m)
        if found is None:
            return text(404)
        interval = query_num(req.query, "interval", faults.SLOW_HEAD_INTERVAL_S, 0.0, MAX_STREAM_S)
        await faults.slow_head(w, req, found, interval)
        return None

    async def _r_reset(self, req: Request, m: Match, w: Writer) -> Answer:
        rst(w)
        return None

    async def _r_reset_mid(self, req: Request, m: Match, w: Writer) -> Answer:
        await faults.reset_mid(w, req, self._image(m))
        return None

    async def _r_short(self, req: Request, m: Match, w: Writer) -> Answer:
        await faults.half(w, req, self._image(m))
        return None  # the caller closes cleanly (FIN)

    async def _r_empty(self, req: Request, m: Match, w: Writer) -> Answer:
        return resp(200, b"", "image/jpeg")

    async def _r_huge(self, req: Request, m: Match, w: Writer) -> Answer:
        await faults.huge(w, req, int(query_num(req.query, "size", HUGE_SIZE, 0, MAX_HUGE_SIZE)))
        return None

    async def _r_endless(self, req: Request, m: Match, w: Writer) -> Answer:
        await faults.endless(w, req)
        return None

    async def _r_gzip(self, req: Request, m: Match, w: Writer) -> Answer:
        return self._img_resp(m, ("Content-Encoding", "gzip"), change=lambda data: gzip.compress(data, mtime=0))

    async def _r_gzip_bomb(self, req: Request, m: Match, w: Writer) -> Answer:
        if self._bomb is None:  # ~1 s of CPU: built once, off the event loop
            self._bomb = await asyncio.get_running_loop().run_in_executor(None, gzip_bomb)
        return resp(200, self._bomb, "image/jpeg", ("Content-Encoding", "gzip"))

    async def _r_html(self, req: Request, m: Match, w: Writer) -> Answer:
        return faults.html_page()

    async def _r_corrupt(self, req: Request, m: Match, w: Writer) -> Answer:
        garbage = random.Random(self.images.seed).randbytes(CORRUPT_BYTES)
        return resp(200, JPEG_START + garbage, "image/jpeg")

    async def _r_truncated(self, req: Request, m: Match, w: Writer) -> Answer:
        return self._img_resp(m, change=lambda data: data[:len(data) * TRUNCATED_TENTHS // 10])

    async def _r_bomb_png(self, req: Request, m: Match, w: Writer) -> Answer:
        return resp(200, bomb_png(), "image/png")

    async def _r_as_text(self, req: Request, m: Match, w: Writer) -> Answer:
        return self._img_resp(m, ctype="text/plain")

    async def _r_disposition(self, req: Request, m: Match, w: Writer) -> Answer:
        name = req.query.get("name", "../../evil.sh")
        return self._img_resp(m, ("Content-Disposition", f'attachment; filename="{name}"'))

    async def _r_headers(self, req: Request, m: Match, w: Writer) -> Answer:
        """The image with the headers the query names: ``?x-robots-tag=noai`` sends ``X-Robots-Tag: noai``;
        ``|`` in a value sends the header once per part. Framing headers cannot be set."""
        return self._img_resp(m, *_query_headers(req))

    async def _r_requality(self, req: Request, m: Match, w: Writer) -> Answer:
        """The image re-encoded as a JPEG of quality Q (1-95): the same picture in other bytes."""
        quality = int(m["q"])
        if not 1 <= quality <= MAX_JPEG_QUALITY:
            return text(404)
        return self._img_resp(m, ctype="image/jpeg", change=lambda data: requality(data, quality))

    async def _r_varying(self, req: Request, m: Match, w: Writer) -> Answer:
        """A JPEG image whose bytes differ on every request (a comment segment counts them), like
        random placeholder services and on-the-fly re-encoders."""
        return self._img_resp(m, change=self._vary)

    def _vary(self, data: bytes) -> bytes:
        self._varying += 1
        comment = f"request {self._varying}".encode()
        return data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + data[2:]

    async def _r_names(self, req: Request, m: Match, w: Writer) -> Answer:
        return resp(200, self.images.image_bytes(0), FORMATS[0][2]) if self.images.count else text(404)
