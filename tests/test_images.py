"""images.inspect_image: what is accepted, what is refused, and why."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from imgfetch.images import NotAnImage, inspect_image
from imgfetch.options import KNOWN_FORMATS


def encode(fmt: str, size=(120, 80)) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 40).convert("RGB").save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_each_format_is_recognised_with_its_size(fmt):
    facts = inspect_image(encode(fmt), formats=KNOWN_FORMATS, max_pixels=10**8)
    assert (facts.format, facts.width, facts.height) == (fmt, 120, 80)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_truncated_images_are_refused_unless_verify_none(fmt):
    data = encode(fmt)
    cut = data[: len(data) * 6 // 10]
    with pytest.raises(NotAnImage, match=f"corrupt {fmt}"):
        inspect_image(cut, formats=KNOWN_FORMATS, max_pixels=10**8)
    if fmt in ("JPEG", "PNG", "GIF"):  # the header alone still parses: --verify none trusts it
        assert inspect_image(cut, formats=KNOWN_FORMATS, max_pixels=10**8, verify="none").format == fmt


def test_full_verify_decodes_every_pixel():
    data = encode("PNG")
    assert inspect_image(data, formats=KNOWN_FORMATS, max_pixels=10**8, verify="full").width == 120


def test_allowlist_bombs_and_non_images():
    with pytest.raises(NotAnImage, match="format GIF not accepted"):
        inspect_image(encode("GIF"), formats=("JPEG", "PNG"), max_pixels=10**8)
    with pytest.raises(NotAnImage, match="decompression bomb: 120x80 pixels > --max-pixels 9000"):
        inspect_image(encode("PNG"), formats=KNOWN_FORMATS, max_pixels=9000)
    with pytest.raises(NotAnImage, match=r"not an image \(looks like HTML\)"):
        inspect_image(b"<!doctype html><html></html>", formats=KNOWN_FORMATS, max_pixels=10**8)
    with pytest.raises(NotAnImage, match=r"not an image \(application/json\)"):
        inspect_image(b'{"a": 1}', formats=KNOWN_FORMATS, max_pixels=10**8, content_type="application/json")
    with pytest.raises(NotAnImage, match="empty response"):
        inspect_image(b"", formats=KNOWN_FORMATS, max_pixels=10**8)
