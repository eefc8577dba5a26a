"""Answers that misbehave on purpose: hangs, trickles, resets, short and endless bodies.

Each ends by itself within a bounded time. ``answer_fault`` plays the per-image
fault kinds of the fault mix (see ``netmodel``) with these same behaviours.
"""
from __future__ import annotations

import asyncio
import itertools
from typing import Iterable, Iterator, Optional

from .netmodel import STATUS_FAULTS
from .wire import Answer, Headers, Request, Response, bounded, ctype_len, head_bytes, resp, rst, start_stream, text, write

MAX_HANG_S = 30.0             # longest /hang may stay silent
SLOW_HEAD_INTERVAL_S = 0.1    # default pause between head bytes on /slow-head/
CHUNK = 64 * 1024             # bytes per write on the streaming routes
MAX_ENDLESS = 2 << 30         # /endless stops after 2 GiB even if nothing else stops it
RST_GRACE_S = 0.05            # lets the half body leave before the RST that follows it
HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>Not an image</title></head>"
             b"<body>nope</body></html>\n")

Found = Optional[tuple[bytes, str]]  # an image's (bytes, Content-Type), None if there is none
Writer = asyncio.StreamWriter


def html_page() -> Response:
    """A 200 HTML page labelled image/jpeg."""
    return resp(200, HTML_PAGE, "image/jpeg")


async def hang(seconds: float) -> Answer:
    """Answer nothing for ``seconds``; the caller then closes the connection."""
    await asyncio.sleep(seconds)
    return None


async def _send(w: Writer, pieces: Iterable[bytes], interval: float = 0.0) -> None:
    """Write ``pieces`` one after another, ``interval`` s apart, until the connection closes."""
    for k, piece in enumerate(pieces):
        if w.is_closing():
            return
        if k and interval:
            await asyncio.sleep(interval)
        w.write(piece)
        await w.drain()


def _bytes_of(data: bytes) -> Iterator[bytes]:
    return (data[k:k + 1] for k in range(len(data)))


async def _stream(w: Writer, req: Request, headers: Headers, pieces: Iterable[bytes], interval: float = 0.0) -> None:
    """A 200 head, then (unless HEAD) the body's ``pieces``: MAX_STREAM_S in all."""
    async def send() -> None:
        if await start_stream(w, req, 200, headers):
            await _send(w, pieces, interval)
    await bounded(send())


async def drip(w: Writer, req: Request, found: Found, interval: float,
               extra: list[tuple[str, str]] | None = None, length: bool = True) -> None:
    """A valid head (with the ``extra`` headers), then the body one byte per ``interval`` s (MAX_STREAM_S
    in all); without ``length``, no Content-Length: the body ends when the connection closes."""
    assert found is not None
    data, ctype = found
    head = ctype_len(ctype, len(data)) if length else [("Content-Type", ctype)]
    await _stream(w, req, head + (extra or []), _bytes_of(data), interval)


async def slow_head(w: Writer, req: Request, found: tuple[bytes, str], interval: float) -> None:
    """The head one byte per ``interval`` s, then the body at once (MAX_STREAM_S in all)."""
    data, ctype = found

    async def slow() -> None:
        await _send(w, _bytes_of(head_bytes(200, ctype_len(ctype, len(data)), False)), interval)
        if req.method != "HEAD":
            await _send(w, [data])
    await bounded(slow())


async def half(w: Writer, req: Request, found: Found) -> bool:
    """Promise the whole image but send half of it; False (after a 404) if there is none."""
    if found is None:
        await write(w, req.method, text(404), False)
        return False
    data, ctype = found
    if await start_stream(w, req, 200, ctype_len(ctype, len(data))):
        w.write(data[:len(data) // 2])
        await w.drain()
    return True


async def reset_mid(w: Writer, req: Request, found: Found) -> None:
    """Half the body, then a TCP RST."""
    if await half(w, req, found):
        await asyncio.sleep(RST_GRACE_S)
        rst(w)


async def huge(w: Writer, req: Request, size: int) -> None:
    """``size`` zero bytes labelled image/jpeg, with a matching Content-Length."""
    zeros = bytes(CHUNK)
    await _stream(w, req, ctype_len("image/jpeg", size), (zeros[:left] for left in range(size, 0, -CHUNK)))


async def endless(w: Writer, req: Request) -> None:
    """A chunked body that never ends (until MAX_ENDLESS or MAX_STREAM_S), then a close."""
    chunked = [("Content-Type", "image/jpeg"), ("Transfer-Encoding", "chunked")]
    chunk = b"%x\r\n%s\r\n" % (CHUNK, bytes(CHUNK))
    await _stream(w, req, chunked, itertools.repeat(chunk, MAX_ENDLESS // CHUNK))  # closed without the last chunk


async def answer_fault(kind: str, w: Writer, req: Request, found: Found,
                       hang_s: float, drip_interval_s: float) -> Answer:
    """Play fault ``kind`` for an image; None when the connection was ended here."""
    if kind in STATUS_FAULTS:
        return text(int(kind))
    if kind == "hang":
        return await hang(hang_s)
    if kind == "drip":
        await drip(w, req, found, drip_interval_s)
    elif kind == "reset":
        rst(w)
    elif kind == "html":
        return html_page()
    else:  # truncated: the caller closes cleanly (FIN) short of Content-Length
        await half(w, req, found)
    return None
