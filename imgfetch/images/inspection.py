"""Bytes -> validated image facts: the format, the pixel limit and the decoders' checks."""
from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageFile

from .gif import gif_structure
from .png import png_structure
from .reasons import NotAnImage, corrupt, short, too_many_for_pillow

EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp",
              "BMP": ".bmp", "TIFF": ".tif", "AVIF": ".avif"}
_ACCEPT_PREFIX = 16  # bytes Pillow's accept() functions are shown, as Image.open does
_JPEG_DRAFT_SCALE = 8  # JPEG's smallest decoding scale is 1/8
_HTML_SNIFF = 256  # bytes of a body searched for signs of HTML
_SHOWN_TYPE_CHARS = 60  # of a Content-Type, quoted in the error

_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
          (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"))
_RIFF_TAG, _RIFF_FORM = slice(0, 4), slice(8, 12)  # RIFF (WebP): b"RIFF", a size, then the form type
_BOX_TYPE, _BRAND = slice(4, 8), slice(8, 12)  # ISO BMFF (AVIF): the first box's type, the major brand
_BMP_TAG, _BMP_DIB_SIZE = slice(0, 2), slice(14, 18)  # BMP: b"BM", then after the 14-byte file header
_BMP_HEADERS = (12, 40, 52, 56, 64, 108, 124)  # DIB header sizes: "BM" alone is too weak a sign


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
    with opened_image(data, formats=formats, max_pixels=max_pixels, content_type=content_type) as (im, facts):
        check_pixels(im, data, facts.format, verify)
    return facts


@contextmanager
def opened_image(data: bytes, *, formats: tuple[str, ...], max_pixels: int,
                 content_type: str | None = None) -> Iterator[tuple[ImageFile.ImageFile, ImageFacts]]:
    """The image opened and its header checked (format, size, pixel limit), pixels not yet decoded:
    for a caller that decodes them itself (images/transform.py), then check_pixels() as it needs."""
    if not data:
        raise NotAnImage("empty response")
    claimed = _magic_format(data)
    if claimed and claimed not in formats:
        raise _not_accepted(claimed, formats)
    im = _open(data, formats, claimed, content_type)
    with im:
        fmt = "JPEG" if im.format == "MPO" else (im.format or "?")
        if fmt not in formats:  # a plugin of an allowed format that reports another (never expected)
            raise _not_accepted(fmt, formats)
        width, height = im.size
        if width < 1 or height < 1:
            raise NotAnImage(f"bad image size {width}x{height}")
        if width * height > max_pixels:
            raise NotAnImage(f"decompression bomb: {width}x{height} pixels > --max-pixels {max_pixels}")
        yield im, ImageFacts(fmt, width, height)


def check_pixels(im: ImageFile.ImageFile, data: bytes, fmt: str, verify: str, *,
                 jpeg_size: tuple[int, int] | None = None) -> None:
    """The --verify check of an opened image (none: nothing). ``jpeg_size``: a JPEG is decoded at the
    smallest scale that still gives this size (instead of 1/8), and stays loaded for the caller."""
    if verify != "none":
        _verify(im, data, fmt, full=verify == "full", jpeg_size=jpeg_size)


def _not_accepted(fmt: str, formats: tuple[str, ...]) -> NotAnImage:
    return NotAnImage(f"format {fmt} not accepted (--formats {','.join(formats)})")


def _open(data: bytes, formats: tuple[str, ...], claimed: str | None,
          content_type: str | None) -> ImageFile.ImageFile:
    """What Image.open(formats=...) does, without its process-wide pixel limit.

    Image.open checks every image against Image.MAX_IMAGE_PIXELS (an error above twice
    that, a warning above it): a global, so --max-pixels above it could only be honoured
    by changing it for every thread, and silencing the warning (warnings.catch_warnings)
    is not thread-safe either. The plugins' own openers read headers only; we check the
    size against max_pixels right after. WebP's opener, and the TIFF, GIF and APNG
    decoders, still apply Pillow's limit themselves: see too_many_for_pillow.
    """
    Image.init()
    prefix, tried = data[:_ACCEPT_PREFIX], []
    for fmt in sorted(formats, key=lambda f: f != claimed):  # the format the magic bytes name first
        factory, accept = Image.OPEN.get(fmt, (None, None))
        accepted = accept(prefix) if accept else factory is not None
        if not accepted or isinstance(accepted, str):  # a string: the codec is not installed
            continue
        tried.append(fmt)
        try:
            return factory(io.BytesIO(data), "")
        except Image.DecompressionBombError:
            raise too_many_for_pillow() from None
        except Exception:  # the bytes are to blame, whatever a plugin raises; try the next one
            continue
    if claimed or tried:
        raise NotAnImage(f"corrupt {claimed or tried[0]} image (cannot read its header)")
    raise NotAnImage(f"not an image ({_describe(data, content_type)})")


def _verify(im: ImageFile.ImageFile, data: bytes, fmt: str, *, full: bool,
            jpeg_size: tuple[int, int] | None = None) -> None:
    """Decode (or, for a PNG, check) the pixels; whatever a decoder raises becomes NotAnImage."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # a user's global setting must not hide truncation from us
        raise NotAnImage("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; cannot validate")
    try:
        _check_pixels(im, data, fmt, full=full, jpeg_size=jpeg_size)
    except NotAnImage:
        raise
    except Exception as exc:  # whatever a decoder raises, the bytes are to blame
        raise corrupt(fmt, exc) from None


def _check_pixels(im: ImageFile.ImageFile, data: bytes, fmt: str, *, full: bool,
                  jpeg_size: tuple[int, int] | None) -> None:
    """Decode enough to catch every file that a full load() would refuse, and a cut animation."""
    if fmt == "PNG" and png_structure(im, data):
        if full:
            im.load()
        return
    if fmt == "GIF":
        gif_structure(data)  # every frame's blocks: load() below decodes only the first frame
    if fmt == "JPEG" and not full:
        # Decoding at 1/8 scale reads every entropy-coded byte but does little IDCT work.
        smallest = (max(1, im.width // _JPEG_DRAFT_SCALE), max(1, im.height // _JPEG_DRAFT_SCALE))
        im.draft(im.mode, jpeg_size or smallest)
        im.load()
    else:
        im.load()
    if full and getattr(im, "n_frames", 1) > 1:
        _load_every_frame(im)


def _load_every_frame(im: ImageFile.ImageFile) -> None:
    """--verify full: decode every frame of an animation, then go back to the first (what callers use)."""
    for frame in range(1, im.n_frames):
        im.seek(frame)
        im.load()
    im.seek(0)
    im.load()


def _magic_format(data: bytes) -> str | None:
    """The format the first bytes name, if any."""
    if data[_RIFF_TAG] == b"RIFF" and data[_RIFF_FORM] == b"WEBP":
        return "WEBP"
    if data[_BOX_TYPE] == b"ftyp" and data[_BRAND] in (b"avif", b"avis"):
        return "AVIF"
    if data[_BMP_TAG] == b"BM" and int.from_bytes(data[_BMP_DIB_SIZE], "little") in _BMP_HEADERS:
        return "BMP"
    return next((name for magic, name in _MAGIC if data.startswith(magic)), None)


def _describe(data: bytes, content_type: str | None) -> str:
    """What the body seems to be instead of an image, for the error."""
    head = data[:_HTML_SNIFF].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "looks like HTML"
    if content_type and content_type.split(";")[0].strip():
        return short(content_type.split(";")[0].strip(), _SHOWN_TYPE_CHARS)
    return f"{len(data)} bytes of unknown data"
