"""The structure of a PNG or APNG checked without unfiltering its pixels."""
from __future__ import annotations

import zlib
from collections.abc import Iterator

from PIL import ImageFile

from .reasons import NotAnImage, short

_SIGNATURE_LEN = 8  # bytes of the PNG signature, before the first chunk
_FIELD = 4  # bytes of a chunk's length, of its type and of its CRC
_CHUNK_OVERHEAD = 3 * _FIELD  # bytes of a chunk besides its data: length, type, CRC
_SEQUENCE = 4  # bytes of an fdAT chunk's sequence number, before its data
_IHDR_LEN = 13  # width and height (4 bytes each), then one byte for each field below
_BIT_DEPTH, _COLOUR_TYPE, _COMPRESSION, _FILTER_METHOD, _INTERLACE = 8, 9, 10, 11, 12  # IHDR offsets
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_BYTE_BITS = 8
_MAX_FILTER = 4  # row filter types are 0 (none) to 4 (Paeth)
_DATA_CHUNKS = (b"IDAT", b"DDAT", b"fdAT")  # what Pillow's decoder reads as one stream
_INFLATE_BLOCK = 1 << 18  # bytes inflated at a time: memory stays flat on huge images
_INFLATE_INPUT = 1 << 14  # compressed bytes handed to zlib at a time
_EXCESS = 1 << 16  # inflated bytes read past the image (to see the zlib checksum), then stop


class _Corrupt(Exception):
    pass


def png_structure(im: ImageFile.ImageFile, data: bytes) -> bool:
    """Check a PNG without unfiltering: False if Pillow must decode it instead.

    Every chunk's length and CRC; IEND present; the first frame's zlib stream inflated
    whole (in blocks), at least as long as its size implies and with a known filter type
    at the start of every row; and every chunk after it handed to Pillow's own chunk
    handlers, as load() does at its end (APNG sequence numbers and frame bounds, text
    chunk limits), for every frame rather than only the first.
    """
    png, tile = getattr(im, "png", None), getattr(im, "tile", None)
    if png is None or not tile or tile[0][0] != "zip":
        return False
    x0, y0, x1, y1 = tile[0][1]  # the first frame, as the decoder would fill it
    view = memoryview(data)
    walk = _ChunkWalk(png, x1 - x0, y1 - y0)
    try:
        for cid, body, stop in _chunks(view):
            if not walk.chunk(cid, view, body, stop):
                return False
        walk.finish()
    except _Corrupt as exc:
        raise NotAnImage(f"corrupt PNG image ({short(str(exc))})") from None
    return True


def _chunks(view: memoryview) -> Iterator[tuple[bytes, int, int]]:
    """``(type, start, end)`` of each chunk's data up to IEND, its length, type and CRC checked."""
    pos, end = _SIGNATURE_LEN, len(view)
    while True:
        if pos + _CHUNK_OVERHEAD > end:
            raise _Corrupt("truncated: no IEND chunk")
        type_at, body = pos + _FIELD, pos + 2 * _FIELD
        cid, stop = bytes(view[type_at:body]), body + int.from_bytes(view[pos:type_at], "big")
        if not (cid.isascii() and cid.isalpha()):
            raise _Corrupt(f"bad chunk type {cid!r}")
        if stop + _FIELD > end:
            raise _Corrupt(f"truncated: {cid.decode()} chunk cut short")
        if zlib.crc32(view[type_at:stop]) != int.from_bytes(view[stop:stop + _FIELD], "big"):
            raise _Corrupt(f"bad {cid.decode()} chunk checksum")
        if cid == b"IEND":
            return
        if (cid == b"IHDR") != (pos == _SIGNATURE_LEN):  # libpng refuses these; Pillow reads the last IHDR
            raise _Corrupt("IHDR chunk out of place")
        yield cid, body, stop
        pos = stop + _FIELD


class _ChunkWalk:
    """What the chunks of one PNG have shown so far: its header, frames and image data."""

    def __init__(self, png: object, width: int, height: int) -> None:
        self.png, self.width, self.height = png, width, height
        self.ihdr = b""
        self.rows: _RowCheck | None = None
        self.frame_open, self.handlers = False, True

    def chunk(self, cid: bytes, view: memoryview, body: int, stop: int) -> bool:
        """Take in one chunk; False if Pillow must decode the image instead."""
        if self.rows is None:  # Pillow's open() has read these chunks already
            return self._before_data(cid, view[body:stop])
        if self.rows.open and cid in _DATA_CHUNKS:
            if cid == b"fdAT":
                self._handle(cid, body, stop - body)  # its sequence number
            self.rows.feed(_image_data(cid, view[body:stop]))
            return True
        if self.rows.open:
            self.rows.finish()
        if cid == b"fcTL" and self.frame_open:  # two frame headers and no frame data between
            raise _Corrupt("APNG missing frame data")
        self.frame_open = cid == b"fcTL" or self.frame_open and cid != b"fdAT"
        if cid != b"IDAT":
            self._handle(cid, body, stop - body)
        return True

    def finish(self) -> None:
        if self.rows is None:
            raise _Corrupt("no IDAT chunk")
        self.rows.finish()

    def _before_data(self, cid: bytes, data: memoryview) -> bool:
        if cid == b"IHDR":
            self.ihdr = bytes(data)
        elif cid in (b"IDAT", b"fdAT"):  # the first frame's data starts
            ihdr = self.ihdr
            if (len(ihdr) < _IHDR_LEN or ihdr[_COLOUR_TYPE] not in _PNG_CHANNELS
                    or ihdr[_COMPRESSION] or ihdr[_FILTER_METHOD]):
                return False
            bits = _PNG_CHANNELS[ihdr[_COLOUR_TYPE]] * ihdr[_BIT_DEPTH]  # per pixel
            self.rows = _RowCheck(self.width, self.height, bits, interlaced=bool(ihdr[_INTERLACE]))
            self.rows.feed(_image_data(cid, data))
        return True

    def _handle(self, cid: bytes, body: int, length: int) -> None:
        self.handlers = self.handlers and _call(self.png, cid, body, length)


def _image_data(cid: bytes, data: memoryview) -> memoryview:
    """The compressed image data in a data chunk: an fdAT chunk's after its sequence number."""
    return data[_SEQUENCE:] if cid == b"fdAT" else data


def _call(png: object, cid: bytes, body: int, length: int) -> bool:
    """Run Pillow's handler for one chunk, as load_end() does; False: stop calling them."""
    png.fp.seek(body)  # type: ignore[attr-defined]
    try:
        png.call(cid, body, length)  # type: ignore[attr-defined]
    except (EOFError, AttributeError):  # image data, or a chunk type Pillow has no handler for
        pass
    except UnicodeDecodeError:
        return False
    return True


class _RowCheck:
    """Inflates one frame's zlib stream block by block; checks its length and row filters."""

    def __init__(self, width: int, height: int, bits: int, *, interlaced: bool) -> None:
        passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
        sizes = [(-(-(width - x) // dx), -(-(height - y) // dy)) for x, y, dx, dy in passes]
        # a row: its filter-type byte, then its pixels rounded up to whole bytes
        self.passes = [(1 + -(-(w * bits) // _BYTE_BITS), h) for w, h in sizes if w > 0 and h > 0]
        self.expected = sum(stride * n for stride, n in self.passes)
        self.inflater, self.total = zlib.decompressobj(), 0
        self.index, self.left, self.next_filter = 0, self.passes[0][1], 0
        self.open = True  # still reading its chunks

    def feed(self, compressed: memoryview) -> None:
        # Small input pieces: decompress() copies the input it has not used on every call.
        try:
            for i in range(0, len(compressed), _INFLATE_INPUT):
                piece = compressed[i:i + _INFLATE_INPUT]
                while not self.inflater.eof and self.total < self.expected + _EXCESS:
                    out = self.inflater.decompress(piece, _INFLATE_BLOCK)
                    self._scan(out)
                    piece = self.inflater.unconsumed_tail
                    if not piece and len(out) < _INFLATE_BLOCK:
                        break  # else zlib may hold more output: ask again
        except zlib.error as exc:
            raise _Corrupt(f"broken image data: {exc}") from None

    def finish(self) -> None:
        self.open = False
        if self.total < self.expected:
            raise _Corrupt(f"image data too short: {self.total:,} of {self.expected:,} bytes")

    def _scan(self, out: bytes) -> None:
        """Check the filter-type byte at the start of each row that begins inside ``out``."""
        start, end = self.total, self.total + len(out)
        while self.index < len(self.passes) and self.next_filter < end:
            stride = self.passes[self.index][0]
            k = min(self.left, -(-(end - self.next_filter) // stride))
            first = self.next_filter - start
            if max(out[first:first + (k - 1) * stride + 1:stride]) > _MAX_FILTER:
                raise _Corrupt("unknown row filter type")
            self.next_filter += k * stride
            self.left -= k
            if not self.left:
                self.index += 1
                self.left = self.passes[self.index][1] if self.index < len(self.passes) else 0
        self.total = end
