"""The built-in loopback image server for tests, benchmarks and ``imgfetch serve``.

The README's Architecture section maps its modules.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names

# Imported on first use, so that the command line's parser reads ServerSettings without asyncio and Pillow.
_LAZY = {"ImageServer": "lifecycle", "FAULT_KINDS": "netmodel", "MAX_LATENCY_S": "netmodel", "NetModel": "netmodel",
         "ServerSettings": "settings", "FORMATS": "synth", "make_image": "synth"}
__all__ = ["FAULT_KINDS", "FORMATS", "MAX_LATENCY_S", "ImageServer", "NetModel", "ServerSettings", "make_image"]

if TYPE_CHECKING:
    from .lifecycle import ImageServer
    from .netmodel import FAULT_KINDS, MAX_LATENCY_S, NetModel
    from .settings import ServerSettings
    from .synth import FORMATS, make_image

__getattr__ = lazy_names(__name__, _LAZY)
