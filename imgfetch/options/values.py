"""The fixed values options draw on: choices and pool defaults. Declared once; a leaf module."""
from __future__ import annotations

import os
import sys

KNOWN_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF")
START_METHODS = ("fork", "spawn", "forkserver")
VERIFY_MODES = ("fast", "full", "none")
NAMINGS = ("url", "hash", "index")
INPUT_FORMATS = ("txt", "csv", "tsv", "jsonl", "parquet")
OUTPUT_FORMATS = ("files", "webdataset", "parquet")
EXECUTORS = ("process", "dask")
RETRY_FAILED = ("all", "transient", "none")
RESIZE_MODES = ("no", "keep_ratio", "keep_ratio_largest", "center_crop", "border")
ENCODE_FORMATS = ("jpg", "png", "webp")
OPT_OUT_DIRECTIVES = ("noai", "noimageai", "noindex", "noimageindex")  # X-Robots-Tag, as img2dataset honours
SHAPING = "resize, filters, dedup and opt-outs"  # the --help section of these options
MAX_DEFAULT_WORKERS = 32
WORKERS_PER_CPU = 2     # downloads wait on the network far more than they compute
PILLOW_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb limit (Image.MAX_IMAGE_PIXELS)
COLUMN_NAMING = "column:"


def usable_cpus() -> int:
    """CPUs this process may run on (affinity-aware where the OS says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def default_workers(cpus: int | None = None) -> int:
    """Two worker processes per CPU (by default, the usable CPUs), at most 32."""
    return min(MAX_DEFAULT_WORKERS, WORKERS_PER_CPU * (cpus or usable_cpus()))


def default_start_method() -> str:
    """forkserver on Linux (Python 3.14's default there), spawn elsewhere."""
    return "forkserver" if sys.platform.startswith("linux") else "spawn"
