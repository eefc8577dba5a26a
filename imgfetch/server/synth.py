"""Synthetic content: the deterministic per-index images, plus decompression bombs."""
from __future__ import annotations

import io
import random
import struct
import threading
import zlib
from typing import Optional

from PIL import Image

# (Pillow format, extension, Content-Type), chosen by index % 4.
FORMATS = (("JPEG", "jpg", "image/jpeg"), ("PNG", "png", "image/png"),
           ("WEBP", "webp", "image/webp"), ("GIF", "gif", "image/gif"))
SEED_STRIDE = 1_000_003        # a prime: (seed, i) pairs never share an RNG stream in practice
MIN_SIDE, MAX_SIDE = 64, 320   # image width and height in pixels
MIN_GRID, MAX_GRID = 3, 8      # side of the random colour grid blown up into the image
NOISE_SHARE = 0.15             # how much grey noise is blended over the colour grid
JPEG_QUALITY, WEBP_QUALITY = 85, 80
PNG_COLOURS, GIF_COLOURS = 256, 64
BOMB_SIDE = 100_000            # width and height an IHDR claims for the PNG bomb
BOMB_IDAT_ZEROS = 64           # raw bytes in the PNG bomb's only IDAT chunk
GZIP_BOMB_SIZE = 200 << 20     # decompressed size of the gzip bomb (200 MiB)
GZIP_MEMBER_SHIFT = 20         # each gzip member inflates to 1 << 20 bytes (1 MiB)
GZIP_LEVEL, GZIP_WBITS = 9, 31  # best compression; wbits 16 + 15 writes a gzip header
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_image(seed: int, i: int, size: Optional[tuple[int, int]] = None) -> bytes:
    """Deterministically render image ``i`` (format FORMATS[i % len(FORMATS)]).

    ``size`` (width, height) replaces the small random size, e.g. for benchmarks on web-sized
    images; the content comes from the same random stream either way.
    """
    rng = random.Random(seed * SEED_STRIDE + i)
    w, h = rng.randint(MIN_SIDE, MAX_SIDE), rng.randint(MIN_SIDE, MAX_SIDE)
    if size is not None:
        w, h = size
    g = rng.randint(MIN_GRID, MAX_GRID)
    base = Image.frombytes("RGB", (g, g), rng.randbytes(g * g * 3)).resize((w, h), Image.Resampling.BILINEAR)
    nw, nh = (w + 1) // 2, (h + 1) // 2
    noise = Image.frombytes("L", (nw, nh), rng.randbytes(nw * nh)).resize((w, h), Image.Resampling.NEAREST)
    img = Image.blend(base, noise.convert("RGB"), NOISE_SHARE)
    # PNG level 1 and WebP method 0 are the fastest encoders: tests render many images.
    fmt, buf = FORMATS[i % len(FORMATS)][0], io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, "JPEG", quality=JPEG_QUALITY)
    elif fmt == "PNG":
        img.quantize(PNG_COLOURS, method=Image.Quantize.FASTOCTREE).save(buf, "PNG", compress_level=1)
    elif fmt == "WEBP":
        img.save(buf, "WEBP", quality=WEBP_QUALITY, method=0)
    else:
        img.quantize(GIF_COLOURS, method=Image.Quantize.FASTOCTREE).save(buf, "GIF")
    return buf.getvalue()


def requality(data: bytes, quality: int) -> bytes:
    """The image re-encoded as a JPEG of ``quality``: the same picture, other bytes (a near-duplicate)."""
    buf = io.BytesIO()
    with Image.open(io.BytesIO(data)) as img:
        img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


class ImageSet:
    """The ``count`` images of one seed, rendered on first use and cached (thread-safe)."""

    def __init__(self, count: int, seed: int) -> None:
        self.count, self.seed = count, seed
        self._images: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def image_bytes(self, i: int) -> bytes:
        """The exact bytes of image ``i``; IndexError outside ``0..count-1``."""
        if not 0 <= i < self.count:
            raise IndexError(i)
        data = self._images.get(i)
        if data is None:
            data = make_image(self.seed, i)
            with self._lock:
                data = self._images.setdefault(i, data)
        return data

    def lookup(self, i: int, ext: str) -> Optional[tuple[bytes, str]]:
        """``(bytes, Content-Type)`` of image ``i`` if it exists with extension ``ext``."""
        if not 0 <= i < self.count or ext != FORMATS[i % len(FORMATS)][1]:
            return None
        return self.image_bytes(i), FORMATS[i % len(FORMATS)][2]

    @staticmethod
    def path(i: int) -> str:
        """The URL path that serves image ``i``."""
        return f"/img/{i}.{FORMATS[i % len(FORMATS)][1]}"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png() -> bytes:
    """Tiny valid PNG whose IHDR claims 100000 x 100000 1-bit grey pixels."""
    # width, height, bit depth 1, colour type 0 (grey), default compression/filter, no interlace
    ihdr = struct.pack(">IIBBBBB", BOMB_SIDE, BOMB_SIDE, 1, 0, 0, 0, 0)
    return (PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * BOMB_IDAT_ZEROS)) + _png_chunk(b"IEND", b""))


def gzip_bomb(size: int = GZIP_BOMB_SIZE) -> bytes:
    """gzip of ``size`` zero bytes (~200 KB for 200 MiB).

    One 1 MiB member, repeated (multi-member gzip).
    """
    comp = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WBITS)
    member = comp.compress(bytes(1 << GZIP_MEMBER_SHIFT)) + comp.flush()
    return member * (size >> GZIP_MEMBER_SHIFT)
