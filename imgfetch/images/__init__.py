"""Bytes -> checked image facts, filters and transforms (the README's Architecture section maps its modules)."""
from __future__ import annotations

from .inspection import EXTENSIONS, ImageFacts, inspect_image
from .reasons import MAX_ERROR_CHARS, NotAnImage

__all__ = ["EXTENSIONS", "MAX_ERROR_CHARS", "ImageFacts", "NotAnImage", "inspect_image"]
