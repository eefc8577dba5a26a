"""Bytes -> validated image facts, as cheaply as the format allows."""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile, UnidentifiedImageError

EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp",
              "BMP": ".bmp", "TIFF": ".tif", "AVIF": ".avif"}


class NotAnImage(ValueError):
    """The body is not an acceptable image; the message says why."""


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
    """Identify and check an image; raise NotAnImage with a readable reason."""
    if not data:
        raise NotAnImage("empty response")
    with warnings.catch_warnings():
        # Pillow warns between 1x and 2x its own bomb limit; we decide with max_pixels.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data), formats=None)
        except Image.DecompressionBombError:
            raise NotAnImage("decompression bomb (too many pixels)") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            claimed = _magic_format(data)
            if claimed:
                raise NotAnImage(f"corrupt {claimed} image (cannot read its header)") from None
            raise NotAnImage(f"not an image ({_describe(data, content_type)})") from None
    with im:
        fmt = "JPEG" if im.format == "MPO" else (im.format or "?")
        if fmt not in formats:
            raise NotAnImage(f"format {fmt} not accepted (--formats {','.join(formats)})")
        width, height = im.size
        if width < 1 or height < 1:
            raise NotAnImage(f"bad image size {width}x{height}")
        if width * height > max_pixels:
            raise NotAnImage(f"decompression bomb: {width}x{height} pixels > --max-pixels {max_pixels}")
        if verify != "none":
            _check_pixels(im, data, fmt, full=verify == "full")
    return ImageFacts(fmt, width, height)


def _check_pixels(im: Image.Image, data: bytes, fmt: str, *, full: bool) -> None:
    """Decode enough to catch corrupt and truncated files."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # a user's global setting must not hide truncation from us
        raise NotAnImage("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; cannot validate")
    try:
        if full:
            im.load()
        elif fmt == "JPEG":
            # Decoding at 1/8 scale reads every entropy-coded byte but does little IDCT work.
            im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
        elif fmt == "PNG":
            im.verify()  # walks every chunk and checks CRCs without decoding pixels
        else:
            im.load()
    except Image.DecompressionBombError:
        raise NotAnImage("decompression bomb (too many pixels)") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, KeyError) as exc:
        raise NotAnImage(f"corrupt {fmt} image ({_short(exc)})") from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."


_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF8", "GIF"),
          (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


def _magic_format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:12] in (b"ftypavif", b"ftypavis"):
        return "AVIF"
    return next((name for magic, name in _MAGIC if data.startswith(magic)), None)


def _describe(data: bytes, content_type: str | None) -> str:
    head = data[:256].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "looks like HTML"
    if content_type:
        return content_type.split(";")[0].strip()
    return f"{len(data)} bytes of unknown data"
