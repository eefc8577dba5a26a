"""Checked bytes -> the bytes to save: filters, resizing and re-encoding with Pillow, a perceptual hash.

``shape_image`` opens and checks the image once (images/inspection.py) and decodes its pixels at most
once: the --verify check's decode is the one the resize uses, and a JPEG is decoded at the smallest
scale (1/8, 1/4, 1/2 or 1) that still gives the size it is resized to. An image that needs no change
keeps its bytes as fetched.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageFile

from ..records import ErrorKind
from .inspection import ImageFacts, check_pixels, opened_image
from .phash import perceptual_hash
from .reasons import NotAnImage, corrupt

RESIZE_MODES = ("no", "keep_ratio", "keep_ratio_largest", "center_crop", "border")
ENCODE_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
FALLBACK_FORMAT = "PNG"  # what a GIF, BMP, TIFF or AVIF becomes when it is re-encoded: lossless, keeps alpha
PHASH_SIDE = 32  # imagehash's phash reads a 32x32 thumbnail: no need to decode a JPEG larger than that
REDUCING_GAP = 3.0  # Pillow shrinks by whole factors first, then resamples: fast, and as sharp to the eye
# The resampling filter, enlarging or shrinking: BICUBIC. Against LANCZOS it uses a quarter (enlarging) to a
# third (shrinking a web-sized image to 256 px) less CPU, and its pictures are as close to the true one:
# enlarged, within 0.2-0.9 dB PSNR of LANCZOS; shrunk, 41-44 dB from LANCZOS's on photos, and as close as it or
# closer to a supersampled truth (BENCHMARKS.md). img2dataset: INTER_AREA (a box filter) to shrink, LANCZOS4.
RESAMPLING = Image.Resampling.BICUBIC
ORIENTATION = 0x0112  # the EXIF tag
PNG_LEVEL = 3  # zlib level of re-encoded PNGs: 4x faster than Pillow's 6 on photos, about 10 % larger
_TURNS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
          5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
          8: Image.Transpose.ROTATE_90}
_SIDEWAYS = (5, 6, 7, 8)  # orientations that swap width and height
_KEPT_MODES = {"JPEG": ("L", "RGB"), "PNG": ("L", "LA", "RGB", "RGBA"), "WEBP": ("RGB", "RGBA")}
_WHITE, _CLEAR = 255, 0


class Filtered(NotAnImage):
    """An image refused by a filter (--min-image-size, --max-aspect-ratio); the message says which."""

    @property
    def kind(self) -> ErrorKind:
        return ErrorKind.FILTERED


@dataclass(frozen=True)
class Shaping:
    """What to do to each image: the options of this module, in Pillow's terms."""

    resize: int | None = None
    mode: str = "keep_ratio"
    only_if_bigger: bool = False
    encode_format: str | None = None  # JPEG, PNG or WEBP; None: each image's own (or FALLBACK_FORMAT)
    quality: int = 95
    min_size: int | None = None
    max_aspect_ratio: float | None = None
    phash: bool = False

    @property
    def reshapes(self) -> bool:
        """Whether an image may be resized or re-encoded at all."""
        return (self.resize is not None and self.mode != "no") or self.encode_format is not None


@dataclass(frozen=True)
class Shaped:
    """What to save: its bytes and facts, the facts as fetched, and its perceptual hash (16 hex digits)."""

    data: bytes
    facts: ImageFacts
    original: ImageFacts
    phash: str | None = None
    decoded_size: tuple[int, int] | None = None  # the size its pixels were decoded at: a JPEG's draft scale


def shape_image(data: bytes, *, formats: tuple[str, ...], max_pixels: int, verify: str = "fast",
                content_type: str | None = None, shaping: Shaping = Shaping()) -> Shaped:
    """Check, filter and, as ``shaping`` says, resize and re-encode one image; raise NotAnImage (or
    Filtered) with a readable reason. With nothing to do, exactly inspect_image's checks."""
    with opened_image(data, formats=formats, max_pixels=max_pixels, content_type=content_type) as (im, facts):
        refuse_filtered(facts, shaping)
        plan = _plan(im, facts, shaping) if shaping.reshapes or shaping.phash else None
        if plan is None or not (plan.reencode or shaping.phash):
            check_pixels(im, data, facts.format, verify)
            return Shaped(data, facts, facts)
        wanted = plan.scaled if plan.reencode else (PHASH_SIDE, PHASH_SIDE)
        stored = (wanted[1], wanted[0]) if plan.turn in _SIDEWAYS else wanted
        check_pixels(im, data, facts.format, verify, jpeg_size=stored)  # a JPEG: decoded here, at this scale
        decoded = _decode(im, facts.format, stored)
        if not plan.reencode:
            return Shaped(data, facts, facts, perceptual_hash(decoded) if shaping.phash else None, decoded.size)
        image = _resized(_colours(_turned(decoded, plan.turn), plan.target), plan.scaled, plan.final, shaping.mode)
        icc = decoded.info.get("icc_profile") if im.mode != "CMYK" else None  # a CMYK profile fits RGB no more
        return Shaped(_encode(image, plan.target, shaping.quality, icc), ImageFacts(plan.target, *image.size), facts,
                      perceptual_hash(image) if shaping.phash else None, decoded.size)


@dataclass(frozen=True)
class _Plan:
    turn: int  # the EXIF orientation to apply (1: none)
    scaled: tuple[int, int]  # the size it is resampled to
    final: tuple[int, int]  # the size it is saved at (after a center crop or borders)
    target: str  # the format it is saved in, if re-encoded
    reencode: bool


def _plan(im: ImageFile.ImageFile, facts: ImageFacts, shaping: Shaping) -> _Plan:
    """What to do to this image, from its header: it is re-encoded when resized, in another format,
    turned upright, animated or CMYK, and otherwise saved as fetched."""
    turn = _orientation(im) if shaping.reshapes else 1
    upright = (facts.height, facts.width) if turn in _SIDEWAYS else (facts.width, facts.height)
    scaled, final = _sizes(upright, shaping)
    own = shaping.encode_format or facts.format  # a GIF, BMP, TIFF or AVIF stays so unless it must change
    cmyk = own == "JPEG" and im.mode not in _KEPT_MODES["JPEG"]
    reencode = shaping.reshapes and (final != upright or own != facts.format or turn != 1 or cmyk or _animated(im))
    return _Plan(turn, scaled, final, own if own in _KEPT_MODES else FALLBACK_FORMAT, reencode)


def refuse_filtered(facts: ImageFacts, shaping: Shaping) -> None:
    """Raise Filtered for an image the filters refuse (decided from its header alone)."""
    short, long = sorted((facts.width, facts.height))
    if shaping.min_size is not None and short < shaping.min_size:
        raise Filtered(f"too small: {facts.width}x{facts.height} pixels < --min-image-size {shaping.min_size}")
    if shaping.max_aspect_ratio is not None and long > shaping.max_aspect_ratio * short:
        raise Filtered(f"too elongated: {facts.width}x{facts.height} pixels > --max-aspect-ratio "
                       f"{shaping.max_aspect_ratio:g}")  # "WxH pixels": the summary groups them as one reason


def _sizes(upright: tuple[int, int], shaping: Shaping) -> tuple[tuple[int, int], tuple[int, int]]:
    """(the size it is resampled to, the size it is saved at: after a center crop or borders)."""
    n, mode = shaping.resize, shaping.mode
    if n is None or mode == "no":
        return upright, upright
    width, height = upright
    side = min(width, height) if mode in ("keep_ratio", "center_crop") else max(width, height)
    if shaping.only_if_bigger and side <= n:
        return upright, upright
    scaled = (max(1, round(width * n / side)), max(1, round(height * n / side)))
    scaled = tuple(n if length == side else other for length, other in zip(upright, scaled))  # exactly N, no rounding
    final = (n, n) if mode in ("center_crop", "border") else scaled
    return (scaled[0], scaled[1]), final


def _orientation(im: Image.Image) -> int:
    try:
        turn = im.getexif().get(ORIENTATION, 1)
    except Exception:  # a broken EXIF block: the pixels are as stored
        return 1
    return turn if turn in _TURNS else 1


def _animated(im: Image.Image) -> bool:
    try:
        return bool(getattr(im, "is_animated", False))
    except Exception:  # the frames are checked by --verify; a broken second frame is no animation to keep
        return True


def _decode(im: ImageFile.ImageFile, fmt: str, size: tuple[int, int]) -> ImageFile.ImageFile:
    """The pixels, decoded once (a JPEG at the smallest scale that gives ``size``; no-op if --verify did)."""
    try:
        if fmt == "JPEG":
            im.draft(im.mode, size)  # None once loaded: then --verify already decoded at this scale
        im.load()
    except Exception as exc:  # whatever a decoder raises, the bytes are to blame
        raise corrupt(fmt, exc) from None
    return im


def _turned(im: Image.Image, turn: int) -> Image.Image:
    return im.transpose(_TURNS[turn]) if turn in _TURNS else im


def _colours(im: Image.Image, fmt: str) -> Image.Image:
    """A mode ``fmt`` stores as it is: alpha kept for PNG and WebP, laid on white for JPEG; CMYK and
    palette images made RGB, bilevel and 16-bit greyscale made 8-bit greyscale."""
    alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if im.mode in _KEPT_MODES[fmt] and not (alpha and fmt == "JPEG"):
        return im
    if alpha:
        rgba = im.convert("RGBA")
        if fmt != "JPEG":
            return rgba
        flat = Image.new("RGB", rgba.size, (_WHITE,) * 3)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if im.mode.startswith("I"):  # 16- or 32-bit greyscale
        im = im.convert("I").point(_to_byte).convert("L")
    elif im.mode == "1":
        im = im.convert("L")
    return im if im.mode in _KEPT_MODES[fmt] else im.convert("RGB")


def _to_byte(value: float) -> float:
    """A 16-bit sample to 8 bits (Image.point in mode I)."""
    return value / 256


def _resized(im: Image.Image, scaled: tuple[int, int], final: tuple[int, int], mode: str) -> Image.Image:
    if im.size != scaled:
        im = im.resize(scaled, RESAMPLING, reducing_gap=REDUCING_GAP)
    if final == scaled:
        return im
    if mode == "center_crop":
        left, top = (scaled[0] - final[0]) // 2, (scaled[1] - final[1]) // 2
        return im.crop((left, top, left + final[0], top + final[1]))
    fill = _CLEAR if "A" in im.mode else _WHITE
    canvas = Image.new(im.mode, final, (fill,) * len(im.getbands()))
    canvas.paste(im, ((final[0] - scaled[0]) // 2, (final[1] - scaled[1]) // 2))
    return canvas


def _encode(im: Image.Image, fmt: str, quality: int, icc: bytes | None) -> bytes:
    out = io.BytesIO()
    params: dict[str, object] = {"icc_profile": icc} if icc else {}
    if fmt in ("JPEG", "WEBP"):
        params["quality"] = quality
    else:
        params["compress_level"] = PNG_LEVEL
    im.save(out, fmt, **params)
    return out.getvalue()
