"""Resize, re-encode and filter (images/transform.py), in-process, on Pillow-made images."""
from __future__ import annotations

import io
import math
import random

import pytest
from PIL import Image, ImageChops, ImageOps

from imgfetch.images import NotAnImage
from imgfetch.images.transform import Filtered, Shaping, shape_image
from imgfetch.options import KNOWN_FORMATS

RED, BLUE, GREEN, WHITE = (255, 0, 0), (0, 0, 255), (0, 160, 0), (255, 255, 255)


def encode(im: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def halves(size: tuple[int, int], left=RED, right=BLUE, mode: str = "RGB") -> Image.Image:
    """An image whose left half is one colour and right half another: turning it shows."""
    im = Image.new(mode, size, right)
    im.paste(left, (0, 0, size[0] // 2, size[1]))
    return im


def shape(data: bytes, verify: str = "fast", **shaping):
    return shape_image(data, formats=KNOWN_FORMATS, max_pixels=10**8, verify=verify, shaping=Shaping(**shaping))


def opened(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def near(pixel, colour, tolerance=40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


PHOTO = encode(halves((1024, 768)), "JPEG", quality=90)


def textured(extent=(-2.0, -1.2, 0.8, 1.2), size=(1024, 768)) -> Image.Image:
    """Detail everywhere, as in a photo: a Mandelbrot set (JPEG quality and perceptual hashes show on it)."""
    fractal = Image.effect_mandelbrot(size, extent, 80)
    return Image.merge("RGB", (fractal, fractal.transpose(Image.Transpose.FLIP_LEFT_RIGHT), Image.effect_noise(size, 40)))


TEXTURE = encode(textured(), "JPEG", quality=90)


def blotches(seed: int, size=(640, 480)) -> Image.Image:
    """Soft blobs of colour, as in a photo out of focus: what a perceptual hash reads steadily."""
    grid = Image.frombytes("RGB", (6, 6), random.Random(seed).randbytes(6 * 6 * 3))
    return grid.resize(size, Image.Resampling.BILINEAR)


@pytest.mark.parametrize("mode, size", [("keep_ratio", (341, 256)), ("keep_ratio_largest", (256, 192)),
                                        ("center_crop", (256, 256)), ("border", (256, 256))])
def test_every_resize_mode_gives_its_size(mode, size):
    shaped = shape(PHOTO, resize=256, mode=mode)
    assert (shaped.facts.width, shaped.facts.height) == size == opened(shaped.data).size
    assert (shaped.original.width, shaped.original.height) == (1024, 768)
    assert shaped.facts.format == "JPEG" and shaped.data != PHOTO


def test_border_pads_with_white_and_center_crop_keeps_the_middle():
    bordered = opened(shape(PHOTO, resize=256, mode="border").data)
    assert near(bordered.getpixel((128, 5)), WHITE) and near(bordered.getpixel((128, 250)), WHITE)
    assert near(bordered.getpixel((10, 128)), RED) and near(bordered.getpixel((245, 128)), BLUE)
    tall = encode(halves((300, 900), left=GREEN, right=GREEN), "PNG")
    cropped = opened(shape(tall, resize=100, mode="center_crop").data)
    assert cropped.size == (100, 100) and near(cropped.getpixel((50, 50)), GREEN)


def test_a_large_jpeg_is_decoded_at_the_smallest_scale_that_gives_n():
    big = encode(halves((4096, 3072)), "JPEG", quality=80)
    assert shape(big, resize=256).decoded_size == (512, 384)  # 1/8 would be 384 high: more than 256
    assert shape(big, resize=256, mode="keep_ratio_largest").decoded_size == (512, 384)  # 1/8: no finer
    assert shape(big, resize=1000).decoded_size == (2048, 1536)  # 1/2: 1/4 would give 768 < 1000
    assert shape(big, resize=256, verify="none").decoded_size == (512, 384)  # drafted without --verify too
    assert shape(big, resize=256, verify="full").decoded_size == (4096, 3072)  # full asks for every pixel
    for mode in ("center_crop", "border"):  # the size resampled to (keep_ratio or _largest), then cropped or padded
        assert shape(big, resize=256, mode=mode).decoded_size == (512, 384)
    assert shape(big, resize=400, mode="center_crop").decoded_size == (1024, 768)  # 1/8 would give 384 < 400
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 4096x3072, shown 3072x4096: the scale is chosen for the stored pixels
    sideways = encode(halves((4096, 3072)), "JPEG", quality=80, exif=exif.tobytes())
    assert shape(sideways, resize=400).decoded_size == (1024, 768)
    assert (shape(sideways, resize=400).facts.width, shape(sideways, resize=400).facts.height) == (400, 533)


def psnr(image: Image.Image, reference: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB of two images of one size (higher: closer; 40 dB looks identical)."""
    histogram = ImageChops.difference(image.convert("RGB"), reference.convert("RGB")).histogram()
    squares = sum(count * (index % 256) ** 2 for index, count in enumerate(histogram))  # R, G, B bins
    mse = squares / (image.size[0] * image.size[1] * 3)
    return 10 * math.log10(255 ** 2 / mse) if mse else math.inf


def fractal_picture(size: tuple[int, int]) -> Image.Image:
    """Fine detail and no noise, rendered at any size."""
    fractal = Image.effect_mandelbrot(size, (-2.0, -1.2, 0.8, 1.2), 80)
    return Image.merge("RGB", (fractal, fractal.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                               fractal.transpose(Image.Transpose.FLIP_TOP_BOTTOM)))


def test_enlarged_and_shrunk_images_stay_close_to_the_true_picture():
    """Resizing uses BICUBIC both ways. An enlargement is within 0.5 dB of a LANCZOS one and sharper than a
    BILINEAR one, measured against the picture made that size from more pixels; a shrunk image is as close
    as a LANCZOS one (within 0.5 dB) to the picture rendered at that size from 64 samples a pixel, closer
    than a box filter's (img2dataset's INTER_AREA), and indistinguishable from LANCZOS's (BENCHMARKS.md has
    the same on photos)."""
    picture = fractal_picture((768, 1024))
    truth = picture.resize((256, 341), Image.Resampling.LANCZOS)  # the picture at 256 px, from all its pixels
    small = picture.resize((96, 128), Image.Resampling.LANCZOS)  # what a long-tail list serves
    enlarged = opened(shape(encode(small, "PNG"), resize=256, encode_format="PNG").data)
    assert enlarged.size == (256, 341)
    assert psnr(enlarged, truth) >= psnr(small.resize((256, 341), Image.Resampling.LANCZOS), truth) - 0.5
    assert psnr(enlarged, truth) > psnr(small.resize((256, 341), Image.Resampling.BILINEAR), truth)
    for source in (picture, fractal_picture((384, 512))):  # shrunk 3x and 1.5x
        shrunk = opened(shape(encode(source, "PNG"), resize=256, encode_format="PNG").data)
        assert shrunk.size == (256, 341)
        supersampled = fractal_picture((256 * 8, 341 * 8)).reduce(8)  # each pixel the mean of 64 samples
        lanczos = source.resize((256, 341), Image.Resampling.LANCZOS)
        assert psnr(shrunk, supersampled) >= psnr(lanczos, supersampled) - 0.5
        assert psnr(shrunk, supersampled) > psnr(source.resize((256, 341), Image.Resampling.BOX), supersampled)
        assert psnr(shrunk, lanczos) > 40


def test_only_if_bigger_leaves_small_images_as_fetched():
    small = encode(halves((200, 150)), "JPEG")
    assert shape(small, resize=256, only_if_bigger=True).data == small
    assert shape(small, resize=256).facts.height == 256  # enlarged without it
    resized = shape(PHOTO, resize=256, only_if_bigger=True)
    assert (resized.facts.width, resized.facts.height) == (341, 256)
    square = encode(halves((256, 256)), "PNG")
    assert shape(square, resize=256, mode="center_crop").data == square  # nothing to do: its own bytes


def test_encode_format_and_quality():
    webp = shape(PHOTO, resize=128, encode_format="WEBP")
    assert webp.facts.format == "WEBP" and opened(webp.data).format == "WEBP"
    low = shape(TEXTURE, resize=256, quality=20).data
    high = shape(TEXTURE, resize=256, quality=95).data
    assert len(low) < len(high) / 2
    png = shape(PHOTO, encode_format="PNG")  # no resize: re-encoded only for the format
    assert png.facts.format == "PNG" and opened(png.data).size == (1024, 768)
    assert shape(PHOTO, encode_format="JPEG").data == PHOTO  # already JPEG and no resize: its own bytes


def test_exif_orientation_is_applied():
    stored = halves((200, 100))  # red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: red on top
    data = encode(stored, "JPEG", exif=exif.tobytes())
    expected = ImageOps.exif_transpose(opened(data))
    for shaped in (shape(data, resize=50), shape(data, encode_format="JPEG")):  # resized, or only turned
        out = opened(shaped.data)
        assert out.size == (shaped.facts.width, shaped.facts.height)
        assert out.size[1] > out.size[0] and expected.size[1] > expected.size[0]
        assert near(out.getpixel((out.width // 2, 5)), expected.getpixel((50, 5)))
        assert near(out.getpixel((out.width // 2, 5)), RED) and near(out.getpixel((out.width // 2, out.height - 5)), BLUE)
        assert not out.getexif().get(0x0112)  # the pixels are upright: no orientation left to apply twice
    assert (shape(data, resize=50).original.width, shape(data, resize=50).original.height) == (200, 100)


def test_cmyk_jpeg_becomes_rgb():
    cmyk = encode(Image.new("CMYK", (120, 80), (0, 255, 255, 0)), "JPEG")  # pure red in ink
    assert opened(cmyk).mode == "CMYK"
    for shaped in (shape(cmyk, resize=40), shape(cmyk, encode_format="JPEG")):
        out = opened(shaped.data)
        assert out.mode == "RGB" and near(out.getpixel((10, 10)), RED)


def test_palette_png_with_transparency():
    im = Image.new("P", (64, 64), 0)
    im.putpalette([*GREEN, *RED] + [0] * 762)
    im.paste(1, (0, 0, 32, 64))  # left half red, right half palette entry 0
    data = encode(im, "PNG", transparency=0)  # entry 0 is transparent
    jpeg = opened(shape(data, resize=32, encode_format="JPEG").data)
    assert jpeg.mode == "RGB" and near(jpeg.getpixel((28, 16)), WHITE) and near(jpeg.getpixel((3, 16)), RED)
    png = opened(shape(data, resize=32).data)
    assert png.mode == "RGBA" and png.getpixel((28, 16))[3] == 0 and png.getpixel((3, 16))[3] == 255


def test_rgba_keeps_alpha_in_webp_and_png_and_is_laid_on_white_in_jpeg():
    im = halves((80, 80), left=(*RED, 255), right=(*BLUE, 0), mode="RGBA")
    data = encode(im, "PNG")
    webp = opened(shape(data, resize=40, encode_format="WEBP").data)
    assert webp.mode == "RGBA" and webp.getpixel((35, 20))[3] < 10 and webp.getpixel((3, 20))[3] > 245
    jpeg = opened(shape(data, resize=40, encode_format="JPEG").data)
    assert jpeg.mode == "RGB" and near(jpeg.getpixel((35, 20)), WHITE) and near(jpeg.getpixel((3, 20)), RED)
    assert opened(shape(data, resize=40).data).mode == "RGBA"


def test_an_animation_becomes_its_first_frame():
    frames = [Image.new("RGB", (60, 40), colour) for colour in (RED, BLUE, GREEN)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert opened(data).n_frames == 3
    for shaped in (shape(data, resize=30), shape(data, encode_format="PNG")):
        out = opened(shaped.data)
        assert shaped.facts.format == "PNG" and not getattr(out, "is_animated", False)
        assert near(out.convert("RGB").getpixel((5, 5)), RED)
    apng = encode(frames[0], "PNG", save_all=True, append_images=frames[1:])
    out = opened(shape(apng, encode_format="PNG").data)
    assert not getattr(out, "is_animated", False) and near(out.convert("RGB").getpixel((5, 5)), RED)


def test_filters_refuse_with_their_reason_before_decoding():
    small = encode(textured(size=(120, 90)), "JPEG")
    with pytest.raises(Filtered, match=r"^too small: 120x90 pixels < --min-image-size 128$") as caught:
        shape(small, min_size=128)
    assert caught.value.kind == "filtered"
    with pytest.raises(Filtered, match=r"^too elongated: 120x90 pixels > --max-aspect-ratio 1.2$"):
        shape(small, max_aspect_ratio=1.2)
    assert shape(small, min_size=90, max_aspect_ratio=1.34).data == small
    cut = small[:len(small) // 2]  # the header without all its pixels: the filter needs only the header
    with pytest.raises(Filtered):
        shape(cut, min_size=128)


def test_a_corrupt_image_is_still_refused_when_resized():
    cut = PHOTO[:len(PHOTO) // 2]
    for verify in ("fast", "none"):
        with pytest.raises(NotAnImage, match="corrupt JPEG") as caught:
            shape(cut, verify=verify, resize=64)
        assert caught.value.kind == "corrupt"


def test_phash_is_the_same_for_a_reencoded_copy():
    photo = encode(blotches(1), "JPEG", quality=90)
    first, copy = shape(photo, phash=True), shape(encode(blotches(1), "JPEG", quality=30), phash=True)
    assert first.data == photo and len(first.phash) == 16
    assert (int(first.phash, 16) ^ int(copy.phash, 16)).bit_count() <= 10  # smooth pictures: a few bits waver
    resized = shape(photo, phash=True, resize=200, encode_format="PNG")
    assert (int(first.phash, 16) ^ int(resized.phash, 16)).bit_count() <= 10
    for seed in (2, 3, 4):
        different = shape(encode(blotches(seed), "JPEG"), phash=True)
        assert (int(first.phash, 16) ^ int(different.phash, 16)).bit_count() > 16
