"""The block structure of a GIF, every frame of it, checked without decoding any LZW data.

Pillow decodes only the first frame of an animated GIF, so a 400-frame GIF cut in half would
pass. This walks the blocks (header, screen descriptor and colour table, then extensions and
images with their sub-blocks) to the trailer, by the length bytes alone: about 1 ms for 4.7 MB
of 400 frames. Bytes after the trailer are left alone, as browsers leave them. Any other byte
where a block should start means damaged data and is refused (Pillow skips it; browsers stop
there, showing what came before, as they do with a cut file).
"""
from __future__ import annotations

from .reasons import NotAnImage

_HEADER = 6  # "GIF87a" or "GIF89a"
_SCREEN = 7  # the logical screen descriptor: width, height, flags, background, aspect
_SCREEN_FLAGS = _HEADER + 4  # its flags byte, after width and height
_IMAGE = 9  # an image descriptor after its 0x2C: left, top, width, height, flags
_IMAGE_FLAGS = 8  # the flags byte within it
_HAS_TABLE = 0x80  # flags: a colour table follows
_TABLE_SIZE = 0x07  # flags: the table holds 2 ** (n + 1) colours of 3 bytes
_EXTENSION, _IMAGE_START, _TRAILER = 0x21, 0x2C, 0x3B
_STRAY = 0x00  # a block terminator too many between blocks: a common encoder slip, skipped as Pillow does
_LABEL = 1  # an extension's label byte, before its sub-blocks
_LZW_SIZE = 1  # an image's LZW minimum code size byte, before its sub-blocks


class _Cut(Exception):
    pass


def gif_structure(data: bytes) -> None:
    """Walk a GIF's blocks to its trailer; NotAnImage if it is cut short or a block is unknown."""
    end, frames, block = len(data), 0, None
    try:
        if end < _HEADER + _SCREEN:
            raise _Cut
        pos = _HEADER + _SCREEN + _table(data[_SCREEN_FLAGS])
        if pos > end:
            raise _Cut
        while pos < end:
            block = data[pos]
            if block == _TRAILER:
                return
            if block == _EXTENSION:
                pos = _sub_blocks(data, pos + 1 + _LABEL)
            elif block == _IMAGE_START:
                frames += 1
                pos = _image(data, pos + 1)
            elif block == _STRAY:
                pos += 1
            else:
                raise NotAnImage(f"corrupt GIF image (unknown block 0x{block:02X} after frame {frames})")
    except _Cut:
        raise NotAnImage(f"corrupt GIF image (truncated: cut {_where(block, frames)})") from None
    where = f"no trailer after frame {frames}" if frames else "cut before the first frame"
    raise NotAnImage(f"corrupt GIF image (truncated: {where})")


def _where(block: int | None, frames: int) -> str:
    """Where the data ran out, given the block it was in and the frames begun so far."""
    if block == _IMAGE_START:
        return f"in frame {frames}"
    return f"after frame {frames}" if frames else "before the first frame"


def _table(flags: int) -> int:
    """Bytes of the colour table that ``flags`` announces (0 without one)."""
    return 3 << ((flags & _TABLE_SIZE) + 1) if flags & _HAS_TABLE else 0


def _image(data: bytes, pos: int) -> int:
    """Past one image: its descriptor, local colour table, LZW code size and data sub-blocks."""
    if pos + _IMAGE > len(data):
        raise _Cut
    pos += _IMAGE + _table(data[pos + _IMAGE_FLAGS])
    return _sub_blocks(data, pos + _LZW_SIZE)


def _sub_blocks(data: bytes, pos: int) -> int:
    """Past a chain of sub-blocks (a length byte, that many bytes) and its zero terminator."""
    end = len(data)
    while pos < end:
        size = data[pos]
        pos += 1 + size
        if not size:
            return pos
    raise _Cut
