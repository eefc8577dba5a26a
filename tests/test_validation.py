"""inspect_image against damaged files, foreign formats, Pillow's pixel limit and long messages."""
from __future__ import annotations

import io
import random
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import PIL
import pytest
from PIL import GifImagePlugin, Image

from imgfetch.images import MAX_ERROR_CHARS, NotAnImage, inspect_image
from imgfetch.options import KNOWN_FORMATS


def encode(fmt: str, size=(120, 80), **params) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 40).convert("RGB").save(buffer, fmt, **params)
    return buffer.getvalue()


def check(data: bytes, verify: str = "fast", formats=KNOWN_FORMATS, **kw):
    return inspect_image(data, formats=formats, max_pixels=10**8, verify=verify, **kw)


def pillow_loads(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
        return True
    except Exception:
        return False


# --------------------------------------------------------------------------- PNG building blocks

def chunks(data: bytes) -> list[list[bytes]]:
    pos, out = 8, []
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        out.append([data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]])
        pos += 12 + length
    return out


def build(parts) -> bytes:
    """A PNG from [type, body] pairs, every CRC correct."""
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(body)) + cid + body + struct.pack(">I", zlib.crc32(cid + body)) for cid, body in parts)


def png_from_rows(width: int, height: int, raw: bytes, interlace: int = 0) -> bytes:
    """An 8-bit RGB PNG whose IDAT inflates to exactly ``raw`` (filter bytes included)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, interlace)
    return build([[b"IHDR", ihdr], [b"IDAT", zlib.compress(raw)], [b"IEND", b""]])


def apng(frames: int = 3) -> bytes:
    images = [Image.effect_noise((20, 16), 60 + i).convert("RGB") for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, "PNG", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def test_png_with_a_damaged_stream_but_good_checksums_is_refused():
    parts = chunks(encode("PNG"))
    idat = next(p for p in parts if p[0] == b"IDAT")
    middle = len(idat[1]) // 2
    idat[1] = idat[1][:middle] + b"\xff" * 16 + idat[1][middle + 16:]
    damaged = build(parts)  # CRCs recomputed: only the compressed pixels are wrong
    assert not pillow_loads(damaged)
    for verify in ("fast", "full"):
        with pytest.raises(NotAnImage, match=r"^corrupt PNG image \("):
            check(damaged, verify)


def test_png_rows_are_counted_and_their_filters_checked():
    rows = b"".join(b"\x01" + bytes(range(30)) for _ in range(7))  # 10x7 RGB, "sub" filter
    assert check(png_from_rows(10, 7, rows)).height == 7
    # The stream ends cleanly one row early: Pillow would show a black last row; we refuse.
    with pytest.raises(NotAnImage, match="image data too short: 186 of 217 bytes"):
        check(png_from_rows(10, 7, rows[:-31]))
    with pytest.raises(NotAnImage, match="unknown row filter type"):
        check(png_from_rows(10, 7, rows[:62] + b"\x05" + rows[63:]))
    assert check(png_from_rows(10, 7, rows + bytes(100))).width == 10  # extra data: tolerated, like Pillow


@pytest.mark.parametrize("width, height", [(1, 1), (3, 2), (9, 9), (13, 5)])
def test_interlaced_png_length_follows_adam7(width, height):
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    raw = b"".join(b"\x00" + bytes(3 * len(range(x, width, dx)))
                   for x, y, dx, dy in passes if x < width for _ in range(y, height, dy))
    good = png_from_rows(width, height, raw, interlace=1)
    assert pillow_loads(good) and check(good).width == width
    with pytest.raises(NotAnImage, match="image data too short"):
        check(png_from_rows(width, height, raw[:-1], interlace=1))


def test_apng_frame_sequence_errors_are_refused():
    parts = chunks(apng())
    assert check(build(parts)).format == "PNG" and check(build(parts), "full").format == "PNG"
    # The first frame's data continued in an fdAT chunk with a wrong sequence number: load() refuses it.
    split = [list(p) for p in parts]
    at = next(i for i, p in enumerate(split) if p[0] == b"IDAT")
    body = split[at][1]
    split[at:at + 1] = [[b"IDAT", body[:len(body) // 2]], [b"fdAT", struct.pack(">I", 7) + body[len(body) // 2:]]]
    assert not pillow_loads(build(split))
    with pytest.raises(NotAnImage, match=r"corrupt PNG image \(APNG contains frame sequence errors\)"):
        check(build(split))
    # A later frame out of sequence: load() reads frame 0 only, but seek(1) would fail.
    later = [list(p) for p in parts]
    fdat = next(p for p in later if p[0] == b"fdAT")
    fdat[1] = struct.pack(">I", 9) + fdat[1][4:]
    with pytest.raises(NotAnImage, match="frame sequence errors"):
        check(build(later))


def mutants(seed: int, count: int):
    """Damaged PNGs and APNGs whose chunk CRCs are all correct."""
    rng = random.Random(seed)
    bases = [encode("PNG", (17, 9)), encode("PNG", (5, 40)), apng(),
             png_from_rows(4, 3, b"".join(b"\x04" + bytes(12) for _ in range(3)))]
    for _ in range(count):
        parts = [list(p) for p in chunks(rng.choice(bases))]
        i = rng.randrange(len(parts))
        kind = rng.randrange(5)
        if kind == 0 and parts[i][1]:
            body = bytearray(parts[i][1])
            body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
            parts[i][1] = bytes(body)
        elif kind == 1:
            parts[i][1] = parts[i][1][:rng.randrange(len(parts[i][1]) + 1)]
        elif kind == 2 and len(parts) > 2:
            del parts[rng.randrange(1, len(parts) - 1)]
        elif kind == 3 and parts[i][0] in (b"fcTL", b"fdAT"):
            parts[i][1] = struct.pack(">I", rng.randrange(6)) + parts[i][1][4:]
        else:
            parts.insert(rng.randrange(1, len(parts)), [rng.choice([b"IDAT", b"fdAT", b"fcTL", b"zTXt", b"tRNS"]),
                                                         rng.randbytes(rng.randrange(30))])
        yield build(parts)


def test_fast_refuses_every_png_that_pillow_cannot_load():
    refused = [data for data in mutants(11, 400) if not pillow_loads(data)]
    assert len(refused) > 100  # the sample exercises the decoder, not only the header parser
    slipped = []
    for data in refused:
        try:
            check(data)
            slipped.append(data)
        except NotAnImage:
            pass
    assert not slipped


# --------------------------------------------------------------------------- decoders and errors

def test_only_allowed_decoders_see_the_bytes(monkeypatch):
    Image.init()
    opened = []
    for fmt, (factory, accept) in list(Image.OPEN.items()):
        def spy(fp, filename, _fmt=fmt, _factory=factory):
            opened.append(_fmt)
            return _factory(fp, filename)
        monkeypatch.setitem(Image.OPEN, fmt, (spy, accept))
    icon = io.BytesIO()
    Image.new("RGB", (16, 16)).save(icon, "ICO")
    for data in (icon.getvalue(), encode("GIF"), encode("TIFF"), b"P6\n4 4\n255\n" + bytes(48)):
        with pytest.raises(NotAnImage, match=r"^(not an image|format \w+ not accepted)"):
            check(data, formats=("JPEG", "PNG"))
    assert opened == []
    assert check(encode("PNG"), formats=("JPEG", "PNG")).format == "PNG" and opened == ["PNG"]


def test_a_jpeg_reported_as_mpo_is_a_jpeg():
    from PIL import MpoImagePlugin  # noqa: F401  (registers the MPO writer)

    first, second = Image.new("RGB", (40, 30), "red"), Image.new("RGB", (40, 30), "blue")
    buffer = io.BytesIO()
    first.save(buffer, "MPO", save_all=True, append_images=[second])
    assert check(buffer.getvalue(), formats=("JPEG",)).format == "JPEG"


@pytest.mark.parametrize("error", [NotImplementedError("no"), struct.error("unpack requires 4 bytes"),
                                   zlib.error("Error -3 while decompressing data"), EOFError(),
                                   ValueError("bad"), KeyError(3), MemoryError()])
def test_whatever_a_decoder_raises_is_the_image_s_fault(monkeypatch, error):
    def fail(self):
        raise error

    monkeypatch.setattr(GifImagePlugin.GifImageFile, "load", fail)
    with pytest.raises(NotAnImage) as info:
        check(encode("GIF"))
    assert str(info.value).startswith(("corrupt GIF image (", "cannot decode GIF image (out of memory)"))


def test_long_messages_are_cut_between_words_with_parentheses_closed(monkeypatch):
    detail = ("broken data stream (while reading the third block of scan data, which was "
              "(apparently) longer than the marker segment said) at offset 123456")

    def fail(self):
        raise OSError(detail)

    monkeypatch.setattr(GifImagePlugin.GifImageFile, "load", fail)
    with pytest.raises(NotAnImage) as info:
        check(encode("GIF"))
    message = str(info.value)
    inner = message[len("corrupt GIF image ("):-1]
    assert message.count("(") == message.count(")") and message.endswith(")")
    assert len(inner) <= MAX_ERROR_CHARS
    kept = inner.split("...")[0]
    assert detail.startswith(kept) and detail[len(kept)] in " ,"  # cut where a word ends
    with pytest.raises(NotAnImage) as info:
        check(b'{"error": 1}', content_type="application/" + "x" * 500 + "; charset=utf-8")
    assert len(str(info.value)) < 100 and str(info.value).endswith("...)")


# --------------------------------------------------------------------------- Pillow's pixel limit

def test_max_pixels_above_pillow_limit_needs_no_global_change(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # as if our images were 100x Pillow's limit
    images = {fmt: encode(fmt) for fmt in ("JPEG", "PNG", "GIF", "BMP")}
    seen: set[int | None] = set()

    def one(fmt: str) -> str:
        seen.add(Image.MAX_IMAGE_PIXELS)
        return inspect_image(images[fmt], formats=KNOWN_FORMATS, max_pixels=10**8).format

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, list(images) * 25)) == list(images) * 25
    assert seen == {1000} and Image.MAX_IMAGE_PIXELS == 1000
    with pytest.raises(NotAnImage, match=r"decompression bomb: 120x80 pixels > --max-pixels 9000"):
        inspect_image(images["PNG"], formats=KNOWN_FORMATS, max_pixels=9000)
    # From Pillow 13 on, WebP's opener applies Pillow's limit itself: a clear refusal. Before, it opens.
    if int(PIL.__version__.split(".")[0]) >= 13:
        with pytest.raises(NotAnImage, match=r"decompression bomb \(over Pillow's limit of 2,000 pixels"):
            inspect_image(encode("WEBP"), formats=KNOWN_FORMATS, max_pixels=10**8)
    else:
        assert inspect_image(encode("WEBP"), formats=KNOWN_FORMATS, max_pixels=10**8).format == "WEBP"
