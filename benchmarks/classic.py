"""The textbook ProcessPoolExecutor(3).map(download_image, urls) on a list file, for realistic.py's classic row.

The textbook code itself lives once, in imgfetch/bench/classic.py (imgfetch bench's baseline row); this
runs it with no time box: every URL, each with requests' timeout of DEFAULT_TIMEOUT_S. Exits 1 if any
URL saved no image.

Usage: python classic.py URLS.txt OUT_DIR
"""
import math
import multiprocessing
import os
import sys

from imgfetch.bench.classic import DEFAULT_TIMEOUT_S, Box, classic_pool

if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        urls = [line.strip() for line in handle if line.strip()]
    os.makedirs(sys.argv[2], exist_ok=True)
    stats = classic_pool(urls, sys.argv[2], box=Box.from_now(0.0, math.inf), workers=3, chunksize=1,
                         start_method=multiprocessing.get_start_method(), timeout=DEFAULT_TIMEOUT_S)
    sys.exit(0 if stats.images == len(urls) else 1)
