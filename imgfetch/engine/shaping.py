"""The image step of one URL, between fetching and saving: check, filter, resize, re-encode, hash.

A worker thread calls ``shape`` with the fetched body; it returns the bytes to save and their facts,
and fills in the record's original size and perceptual hash (images/transform.py does the work).
"""
from __future__ import annotations

from ..images import ImageFacts
from ..images.transform import ENCODE_FORMATS, Shaping, shape_image
from ..options import Options
from ..records import FetchResult

DEFAULT_MODE = "keep_ratio"  # --resize without --resize-mode


def shaping_of(opts: Options) -> Shaping:
    """The run's options, in images/transform.py's terms (a few microseconds: not worth caching, and
    Options need not be hashable: initargs may hold anything)."""
    return Shaping(resize=opts.resize, mode=opts.resize_mode or DEFAULT_MODE, only_if_bigger=opts.resize_only_if_bigger,
                   encode_format=ENCODE_FORMATS[opts.encode_format] if opts.encode_format else None,
                   quality=opts.encode_quality, min_size=opts.min_image_size,
                   max_aspect_ratio=opts.max_aspect_ratio, phash=(opts.dedup or "").startswith("phash"))


def shape(result: FetchResult, body: bytes, opts: Options, content_type: str | None) -> tuple[bytes, ImageFacts]:
    """(the bytes to save, their facts); raises NotAnImage (or transform.Filtered) with the reason."""
    shaped = shape_image(body, formats=opts.formats, max_pixels=opts.max_pixels, verify=opts.verify,
                         content_type=content_type, shaping=shaping_of(opts))
    result.original_width, result.original_height = shaped.original.width, shaped.original.height
    result.phash = shaped.phash
    return shaped.data, shaped.facts
