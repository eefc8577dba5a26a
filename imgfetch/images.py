"""Bytes -> validated image facts, as cheaply as the format allows."""
from __future__ import annotations

import io
import zlib
from dataclasses import dataclass

from PIL import Image, ImageFile

EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp",
              "BMP": ".bmp", "TIFF": ".tif", "AVIF": ".avif"}
MAX_ERROR_CHARS = 80  # of the detail in "corrupt PNG image (<detail>)"


class NotAnImage(ValueError):
    """The body is not an acceptable image; the message says why."""

    @property
    def kind(self) -> str:
        """The record's error_kind (see failures.ERROR_KINDS), from how this module words its reasons."""
        text = str(self)
        for prefix, kind in _KINDS:
            if text.startswith(prefix):
                return kind
        return "not_image"


_KINDS = (("corrupt", "corrupt"), ("bad image size", "corrupt"), ("format ", "format"),
          ("decompression bomb", "too_large"), ("empty", "empty"))


@dataclass(frozen=True)
class ImageFacts:
    format: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


def inspect_image(data: bytes, *, formats: tuple[str, ...], max_pixels: int,
                  verify: str = "fast", content_type: str | None = None) -> ImageFacts:
    """Identify and check an image; raise NotAnImage with a readable reason.

    Only the decoders of ``formats`` ever see ``data``, and nothing global is changed.
    ``max_pixels`` may exceed Pillow's ``Image.MAX_IMAGE_PIXELS``, except where a decoder
    applies that limit itself (see _open).
    """
    if not data:
        raise NotAnImage("empty response")
    claimed = _magic_format(data)
    if claimed and claimed not in formats:
        raise NotAnImage(f"format {claimed} not accepted (--formats {','.join(formats)})")
    im = _open(data, formats, claimed, content_type)
    with im:
        fmt = "JPEG" if im.format == "MPO" else (im.format or "?")
        if fmt not in formats:  # a plugin of an allowed format that reports another (never expected)
            raise NotAnImage(f"format {fmt} not accepted (--formats {','.join(formats)})")
        width, height = im.size
        if width < 1 or height < 1:
            raise NotAnImage(f"bad image size {width}x{height}")
        if width * height > max_pixels:
            raise NotAnImage(f"decompression bomb: {width}x{height} pixels > --max-pixels {max_pixels}")
        if verify != "none":
            if ImageFile.LOAD_TRUNCATED_IMAGES:  # a user's global setting must not hide truncation from us
                raise NotAnImage("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; cannot validate")
            try:
                _check_pixels(im, data, fmt, full=verify == "full")
            except NotAnImage:
                raise
            except Exception as exc:  # whatever a decoder raises, the bytes are to blame
                raise _corrupt(fmt, exc) from None
    return ImageFacts(fmt, width, height)


def _open(data: bytes, formats: tuple[str, ...], claimed: str | None,
          content_type: str | None) -> ImageFile.ImageFile:
    """What Image.open(formats=...) does, without its process-wide pixel limit.

    Image.open checks every image against Image.MAX_IMAGE_PIXELS (an error above twice
    that, a warning above it): a global, so --max-pixels above it could only be honoured
    by changing it for every thread, and silencing the warning (warnings.catch_warnings)
    is not thread-safe either. The plugins' own openers read headers only; we check the
    size against max_pixels right after. WebP's opener, and the TIFF, GIF and APNG
    decoders, still apply Pillow's limit themselves: see _too_many_for_pillow.
    """
    Image.init()
    prefix, tried = data[:16], []
    for fmt in sorted(formats, key=lambda f: f != claimed):  # the format the magic bytes name first
        factory, accept = Image.OPEN.get(fmt, (None, None))
        accepted = accept(prefix) if accept else factory is not None
        if not accepted or isinstance(accepted, str):  # a string: the codec is not installed
            continue
        tried.append(fmt)
        try:
            return factory(io.BytesIO(data), "")
        except Image.DecompressionBombError:
            raise _too_many_for_pillow() from None
        except Exception:  # the bytes are to blame, whatever a plugin raises; try the next one
            continue
    if claimed or tried:
        raise NotAnImage(f"corrupt {claimed or tried[0]} image (cannot read its header)")
    raise NotAnImage(f"not an image ({_describe(data, content_type)})")


def _check_pixels(im: ImageFile.ImageFile, data: bytes, fmt: str, *, full: bool) -> None:
    """Decode enough to catch every file that a full load() would refuse."""
    if fmt == "PNG" and _png_structure(im, data):
        if full:
            im.load()
    elif fmt == "JPEG" and not full:
        # Decoding at 1/8 scale reads every entropy-coded byte but does little IDCT work.
        im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
        im.load()
    else:
        im.load()


# --------------------------------------------------------------------------- PNG

_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_DATA_CHUNKS = (b"IDAT", b"DDAT", b"fdAT")  # what Pillow's decoder reads as one stream
_INFLATE_BLOCK = 1 << 18  # bytes inflated at a time: memory stays flat on huge images
_INFLATE_INPUT = 1 << 14  # compressed bytes handed to zlib at a time
_EXCESS = 1 << 16  # inflated bytes read past the image (to see the zlib checksum), then stop


class _Corrupt(Exception):
    pass


def _png_structure(im: ImageFile.ImageFile, data: bytes) -> bool:
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
    view, pos, end, ihdr = memoryview(data), 8, len(data), b""
    rows: _RowCheck | None = None
    frame_open, handlers = False, True
    try:
        while True:
            if pos + 12 > end:
                raise _Corrupt("truncated: no IEND chunk")
            length, cid = int.from_bytes(view[pos:pos + 4], "big"), bytes(view[pos + 4:pos + 8])
            body, stop = pos + 8, pos + 8 + length
            if not (cid.isascii() and cid.isalpha()):
                raise _Corrupt(f"bad chunk type {cid!r}")
            if stop + 4 > end:
                raise _Corrupt(f"truncated: {cid.decode()} chunk cut short")
            if zlib.crc32(view[pos + 4:stop]) != int.from_bytes(view[stop:stop + 4], "big"):
                raise _Corrupt(f"bad {cid.decode()} chunk checksum")
            if cid == b"IEND":
                break
            payload = view[body + 4 if cid == b"fdAT" else body:stop]  # fdAT: after its sequence number
            if (cid == b"IHDR") != (pos == 8):  # libpng refuses these; Pillow reads the last IHDR
                raise _Corrupt("IHDR chunk out of place")
            if rows is None:  # Pillow's open() has read these chunks already
                if cid == b"IHDR":
                    ihdr = bytes(view[body:stop])
                elif cid in (b"IDAT", b"fdAT"):  # the first frame's data starts
                    if len(ihdr) < 13 or ihdr[9] not in _PNG_CHANNELS or ihdr[10:12] != b"\0\0":
                        return False
                    rows = _RowCheck(x1 - x0, y1 - y0, _PNG_CHANNELS[ihdr[9]] * ihdr[8],
                                     interlaced=bool(ihdr[12]))
                    rows.feed(payload)
            elif rows.open and cid in _DATA_CHUNKS:
                if cid == b"fdAT":
                    handlers = handlers and _call(png, cid, body, length)  # its sequence number
                rows.feed(payload)
            else:
                if rows.open:
                    rows.finish()
                if cid == b"fcTL" and frame_open:  # two frame headers and no frame data between
                    raise _Corrupt("APNG missing frame data")
                frame_open = cid == b"fcTL" or frame_open and cid != b"fdAT"
                if cid != b"IDAT":
                    handlers = handlers and _call(png, cid, body, length)
            pos = stop + 4
        if rows is None:
            raise _Corrupt("no IDAT chunk")
        rows.finish()
    except _Corrupt as exc:
        raise NotAnImage(f"corrupt PNG image ({_short(str(exc))})") from None
    return True


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
        self.passes = [(1 + (w * bits + 7) // 8, h) for w, h in sizes if w > 0 and h > 0]
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
            if max(out[first:first + (k - 1) * stride + 1:stride]) > 4:
                raise _Corrupt("unknown row filter type")
            self.next_filter += k * stride
            self.left -= k
            if not self.left:
                self.index += 1
                self.left = self.passes[self.index][1] if self.index < len(self.passes) else 0
        self.total = end


# --------------------------------------------------------------------------- messages

def _corrupt(fmt: str, exc: BaseException) -> NotAnImage:
    if isinstance(exc, Image.DecompressionBombError):
        return _too_many_for_pillow()
    if isinstance(exc, MemoryError):
        return NotAnImage(f"cannot decode {fmt} image (out of memory)")
    return NotAnImage(f"corrupt {fmt} image ({_short(str(exc).strip() or type(exc).__name__)})")


def _too_many_for_pillow() -> NotAnImage:
    limit = Image.MAX_IMAGE_PIXELS or 0
    return NotAnImage(f"decompression bomb (over Pillow's limit of {2 * limit:,} pixels, "
                      "twice Image.MAX_IMAGE_PIXELS)")


def _short(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """At most about ``limit`` characters, cut at a word boundary, parentheses closed."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[:limit - 2]  # room for "..."; a space at its end still closes a whole word
    cut = head[:head.rindex(" ")] if " " in head[limit // 3:] else head[:-1]
    while True:
        cut = cut.rstrip(" ,;:-(")
        closing = ")" * max(0, cut.count("(") - cut.count(")"))
        if len(cut) + 3 + len(closing) <= limit or " " not in cut:
            return cut + "..." + closing
        cut = cut[:cut.rindex(" ")]


_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
          (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"))
_BMP_HEADERS = (12, 40, 52, 56, 64, 108, 124)  # DIB header sizes: "BM" alone is too weak a sign


def _magic_format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        return "AVIF"
    if data[:2] == b"BM" and int.from_bytes(data[14:18], "little") in _BMP_HEADERS:
        return "BMP"
    return next((name for magic, name in _MAGIC if data.startswith(magic)), None)


def _describe(data: bytes, content_type: str | None) -> str:
    head = data[:256].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "looks like HTML"
    if content_type and content_type.split(";")[0].strip():
        return _short(content_type.split(";")[0].strip(), 60)
    return f"{len(data)} bytes of unknown data"
