"""A perceptual hash of decoded pixels, for --dedup phash:D (imagehash, from the ``phash`` extra)."""
from __future__ import annotations

from PIL import Image

EXTRA_MISSING = "--dedup phash needs imagehash: pip install 'imgfetch[phash]'"


def perceptual_hash(im: Image.Image) -> str:
    """imagehash's phash of the image, as 16 hex digits (alpha laid on white first, so a transparent
    background hashes as the white a viewer shows, not as whatever colour its hidden pixels hold)."""
    try:
        import imagehash
    except ImportError:  # the option check refuses phash without it; this is for a direct caller
        raise RuntimeError(EXTRA_MISSING) from None
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        im = flat
    return str(imagehash.phash(im))
