"""The built-in loopback image server for tests, benchmarks and ``imgfetch serve``.

The README's Architecture section maps its modules.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names

# Imported on first use, so that the command line's parser reads ServerSettings without asyncio and Pillow.
_LAZY = {"CHUNK": "faults", "MAX_HANG_S": "faults", "STOP_TIMEOUT_S": "lifecycle", "ImageServer": "lifecycle",
         "FAULT_KINDS": "netmodel", "MAX_FAULT_HANG_S": "netmodel", "MAX_LATENCY_S": "netmodel", "PRESETS": "netmodel",
         "STATUS_FAULTS": "netmodel", "FaultSpec": "netmodel", "NetModel": "netmodel", "parse_faults": "netmodel",
         "ServerSettings": "settings", "ServerStats": "stats", "FORMATS": "synth", "make_image": "synth",
         "MAX_STREAM_S": "wire"}
__all__ = ["CHUNK", "FAULT_KINDS", "FORMATS", "MAX_FAULT_HANG_S", "MAX_HANG_S", "MAX_LATENCY_S", "MAX_STREAM_S",
           "PRESETS", "STATUS_FAULTS", "STOP_TIMEOUT_S", "FaultSpec", "ImageServer", "NetModel", "ServerSettings",
           "ServerStats", "make_image", "parse_faults"]

if TYPE_CHECKING:
    from .faults import CHUNK, MAX_HANG_S
    from .lifecycle import STOP_TIMEOUT_S, ImageServer
    from .netmodel import (
        FAULT_KINDS,
        MAX_FAULT_HANG_S,
        MAX_LATENCY_S,
        PRESETS,
        STATUS_FAULTS,
        FaultSpec,
        NetModel,
        parse_faults,
    )
    from .settings import ServerSettings
    from .stats import ServerStats
    from .synth import FORMATS, make_image
    from .wire import MAX_STREAM_S

__getattr__ = lazy_names(__name__, _LAZY)
