"""Bytes -> validated image facts, as cheaply as the format allows.

inspection: inspect_image, ImageFacts (format checks, pixel limits, the right extension);
png: the PNG/APNG chunk structure check; gif: the GIF block walk (every frame, to the trailer);
reasons: NotAnImage and how its reasons are worded; transform: filters, resizing and re-encoding
(shape_image, Shaping, Filtered); phash: the perceptual hash --dedup phash:D compares.
"""
from __future__ import annotations

from .inspection import EXTENSIONS, ImageFacts, inspect_image
from .reasons import MAX_ERROR_CHARS, NotAnImage

__all__ = ["EXTENSIONS", "MAX_ERROR_CHARS", "ImageFacts", "NotAnImage", "inspect_image"]
