"""Built-in loopback image server (asyncio, hand-written HTTP/1.1) for tests, benchmarks and ``imgfetch serve``.
``lifecycle`` holds ImageServer (socket on loopback only, thread, bounded stop); ``connection`` the keep-alive
request loop; ``wire`` HTTP/1.1 parsing and writing; ``routes`` which path gives what; ``faults`` the answers
that misbehave on purpose (each bounded in time); ``netmodel`` the per-image latency and fault mix; ``synth``
the deterministic images and bombs; ``stats`` the request counters. It never imports the engine.
"""
from .faults import CHUNK, MAX_HANG_S
from .lifecycle import STOP_TIMEOUT_S, ImageServer
from .netmodel import (FAULT_KINDS, MAX_FAULT_HANG_S, MAX_LATENCY_S, PRESETS, STATUS_FAULTS, FaultSpec, NetModel,
                       parse_faults)
from .stats import ServerStats
from .synth import FORMATS, make_image
from .wire import MAX_STREAM_S

__all__ = ["CHUNK", "FAULT_KINDS", "FORMATS", "MAX_FAULT_HANG_S", "MAX_HANG_S", "MAX_LATENCY_S", "MAX_STREAM_S",
           "PRESETS", "STATUS_FAULTS", "STOP_TIMEOUT_S", "FaultSpec", "ImageServer", "NetModel", "ServerStats",
           "make_image", "parse_faults"]
