"""Animated images cut short are refused, whichever frame the cut falls in: GIF, APNG, animated WebP."""
from __future__ import annotations

import io
import re

import pytest
import responses
from PIL import Image

from imgfetch import fetch
from imgfetch.images import NotAnImage, inspect_image
from imgfetch.options import KNOWN_FORMATS

CUTS = 20  # offsets spread across each file, the last one byte short of the whole
FORMATS = {"GIF": "GIF", "APNG": "PNG", "animated WebP": "WEBP"}


def animation(fmt: str, frames: int, size=(48, 32)) -> bytes:
    """An animation whose every frame differs, so no encoder folds frames together."""
    images = [Image.effect_noise(size, 30 + k % 50).convert("RGB") for k in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, FORMATS.get(fmt, fmt), save_all=True, append_images=images[1:], duration=40, loop=0)
    return buffer.getvalue()


def check(data: bytes, verify: str = "fast"):
    return inspect_image(data, formats=KNOWN_FORMATS, max_pixels=10**8, verify=verify)


def cut_points(size: int) -> list[int]:
    return sorted({size * k // CUTS for k in range(1, CUTS)} | {size - 1})


@pytest.mark.parametrize("verify", ["fast", "full"])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_an_animation_cut_anywhere_is_refused(fmt, verify):
    data = animation(fmt, 12)
    assert check(data, verify).format == FORMATS[fmt]
    for cut in cut_points(len(data)):
        with pytest.raises(NotAnImage) as refused:
            check(data[:cut], verify)
        assert refused.value.kind == "corrupt", (cut, str(refused.value))


def test_a_400_frame_gif_cut_in_half_names_the_frame():
    data = animation("GIF", 400, size=(16, 16))
    assert check(data).format == "GIF"
    with pytest.raises(NotAnImage, match=r"^corrupt GIF image \(truncated: cut (in|after) frame 2\d\d\)$"):
        check(data[:len(data) // 2])
    with pytest.raises(NotAnImage, match=r"^corrupt GIF image \(truncated: no trailer after frame 400\)$"):
        check(data[:-1])  # only the trailer byte missing
    assert check(data + b"\0junk a server appended").format == "GIF"  # after the trailer: ignored, as browsers do


def test_verify_none_reads_the_header_only():
    """As documented (--verify none: header only), a cut GIF or APNG whose header is whole passes."""
    for fmt in ("GIF", "APNG"):
        cut = animation(fmt, 12)
        cut = cut[:len(cut) // 2]
        assert check(cut, "none").format == FORMATS[fmt]
    gif = animation("GIF", 12)
    with pytest.raises(NotAnImage, match="truncated"):
        check(gif[:len(gif) // 2], "fast")


@responses.activate
def test_fetch_refuses_a_cut_animated_gif(tmp_path):
    data = animation("GIF", 40)
    responses.get("http://img.example.com/anim.gif", body=data[:len(data) * 3 // 4], content_type="image/gif")
    r = fetch("http://img.example.com/anim.gif", tmp_path / "out", retries=0, progress=False)
    assert (r.status, r.error_kind, r.path) == ("failed", "corrupt", None)
    assert re.fullmatch(r"corrupt GIF image \(truncated: cut (in|after) frame \d+\)", r.error), r.error
    assert list((tmp_path / "out").iterdir()) == []


def _garble_last_gif_frame(data: bytes) -> bytes:
    """Overwrite the LZW data of a GIF's last frame, keeping every block's size: the file's structure
    stays whole, only decoding that frame shows the damage."""
    d = bytearray(data)
    pos, flags = 13, d[10]
    if flags & 0x80:
        pos += 3 * (2 << (flags & 7))
    frames: list[list[tuple[int, int]]] = []
    while d[pos] != 0x3B:
        if d[pos] == 0x21:  # an extension: label, then sub-blocks
            pos += 2
            while d[pos]:
                pos += d[pos] + 1
            pos += 1
            continue
        local = d[pos + 9]  # an image descriptor
        pos += 10 + (3 * (2 << (local & 7)) if local & 0x80 else 0) + 1  # + the LZW minimum code size
        blocks = []
        while d[pos]:
            blocks.append((pos + 1, d[pos]))
            pos += d[pos] + 1
        pos += 1
        frames.append(blocks)
    for start, size in frames[-1][1:]:
        d[start:start + size] = b"\xff" * size
    return bytes(d)


def test_verify_full_decodes_every_frame_of_an_animation():
    """--verify full promises every pixel: a later frame that cannot be decoded is refused (fast
    checks the blocks of every frame but decodes only the first, so it passes)."""
    frames = [Image.effect_noise((64, 64), 60 + 20 * k).convert("L").convert("P") for k in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    damaged = _garble_last_gif_frame(buffer.getvalue())
    assert check(damaged, "fast").format == "GIF"
    with pytest.raises(NotAnImage, match=r"corrupt GIF image"):
        check(damaged, "full")
    assert check(buffer.getvalue(), "full").format == "GIF"  # a whole animation still passes
