"""NotAnImage, and the wording of its reasons: short, readable, and sorted into error kinds."""
from __future__ import annotations

from PIL import Image

from ..records import ErrorKind

MAX_ERROR_CHARS = 80  # of the detail in "corrupt PNG image (<detail>)"
_ELLIPSIS = "..."
_WORD_CUT_FROM = 3  # a detail is cut at a space only if that keeps over 1/3 of the limit


class NotAnImage(ValueError):
    """The body is not an acceptable image; the message says why."""

    @property
    def kind(self) -> ErrorKind:
        """The record's error_kind, from how this package words its reasons."""
        text = str(self)
        for prefix, kind in _KINDS:
            if text.startswith(prefix):
                return kind
        return ErrorKind.NOT_IMAGE


_KINDS = (("corrupt", ErrorKind.CORRUPT), ("bad image size", ErrorKind.CORRUPT), ("format ", ErrorKind.FORMAT),
          ("decompression bomb", ErrorKind.TOO_LARGE), ("empty", ErrorKind.EMPTY))


def corrupt(fmt: str, exc: BaseException) -> NotAnImage:
    """The refusal for whatever a decoder raised on the bytes of a ``fmt`` image."""
    if isinstance(exc, Image.DecompressionBombError):
        return too_many_for_pillow()
    if isinstance(exc, MemoryError):
        return NotAnImage(f"cannot decode {fmt} image (out of memory)")
    return NotAnImage(f"corrupt {fmt} image ({short(str(exc).strip() or type(exc).__name__)})")


def too_many_for_pillow() -> NotAnImage:
    """The refusal when Pillow's own pixel limit stopped a decoder."""
    limit = Image.MAX_IMAGE_PIXELS or 0
    return NotAnImage(f"decompression bomb (over Pillow's limit of {2 * limit:,} pixels, "
                      "twice Image.MAX_IMAGE_PIXELS)")


def short(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """At most about ``limit`` characters, cut at a word boundary, parentheses closed."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[:limit - len(_ELLIPSIS) + 1]  # room for "..."; a space at its end still closes a whole word
    cut = head[:head.rindex(" ")] if " " in head[limit // _WORD_CUT_FROM:] else head[:-1]
    while True:
        cut = cut.rstrip(" ,;:-(")
        closing = ")" * max(0, cut.count("(") - cut.count(")"))
        if len(cut) + len(_ELLIPSIS) + len(closing) <= limit or " " not in cut:
            return cut + _ELLIPSIS + closing
        cut = cut[:cut.rindex(" ")]
