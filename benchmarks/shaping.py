"""What resizing and --dedup cost: milliseconds per image, and near-hash lookups per second at a million.

    python benchmarks/shaping.py                       # all three parts
    python benchmarks/shaping.py --part transform --repeat 50
    python benchmarks/shaping.py --part nearhash --hashes 1000000 --distances 4,8
    python benchmarks/shaping.py --part load --records 200000

transform: per image, the worker's image step (check, and resize/re-encode when asked), median of
--repeat runs, on photo-like images made here with Pillow. "check only" is what a run without
--resize does (--verify fast), so the difference is what --resize adds.
nearhash: store/nearhash.py with --hashes random 64-bit hashes; lookups of hashes a few bits from a
stored one (found) and of random ones (not found).
load: how long --dedup takes to read a manifest of --records ok records as a run starts.
"""
from __future__ import annotations

import argparse
import io
import json
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from imgfetch.images import inspect_image
from imgfetch.images.transform import Shaping, shape_image
from imgfetch.options import KNOWN_FORMATS
from imgfetch.store.dedup import Dedup
from imgfetch.store.nearhash import NearIndex


def photo(size: tuple[int, int], seed: int = 1) -> Image.Image:
    """Soft colour blobs with grain, as a photo: what JPEG and PNG encoders meet in real lists."""
    rng = random.Random(seed)
    grid = Image.frombytes("RGB", (8, 6), rng.randbytes(8 * 6 * 3)).resize(size, Image.Resampling.BICUBIC)
    grain = Image.effect_noise(size, 24).convert("RGB")
    return Image.blend(grid, grain, 0.15)


def encoded(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def cases() -> list[tuple[str, bytes]]:
    base = photo((1024, 768))
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((1024, 768)))
    return [
        ("1024x768 JPEG q90", encoded(base, "JPEG", quality=90)),
        ("1024x768 PNG RGBA", encoded(rgba, "PNG")),
        ("1024x768 CMYK JPEG", encoded(base.convert("CMYK"), "JPEG", quality=90)),
        ("4000x3000 JPEG q90", encoded(photo((4000, 3000)), "JPEG", quality=90)),
    ]


def median_ms(work, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def transform_part(repeat: int) -> None:
    settings = [("check only", None), ("keep_ratio 256 (jpg)", Shaping(resize=256, encode_format="JPEG")),
                ("keep_ratio 256 (own format)", Shaping(resize=256)),
                ("center_crop 256 webp", Shaping(resize=256, mode="center_crop", encode_format="WEBP")),
                ("phash only", Shaping(phash=True))]
    print(f"ms per image, median of {repeat} (--verify fast):")
    print(f"{'image':<22}" + "".join(f"{name:>30}" for name, _ in settings))
    for label, data in cases():
        cells = []
        for _name, shaping in settings:
            if shaping is None:
                work = lambda d=data: inspect_image(d, formats=KNOWN_FORMATS, max_pixels=10**9)  # noqa: E731
            else:
                work = lambda d=data, s=shaping: shape_image(d, formats=KNOWN_FORMATS, max_pixels=10**9,  # noqa: E731
                                                             shaping=s)
            cells.append(f"{median_ms(work, repeat):>30.2f}")
        print(f"{label:<22}" + "".join(cells))


def nearhash_part(count: int, distances: list[int], queries: int) -> None:
    rng = random.Random(7)
    stored = [rng.getrandbits(64) for _ in range(count)]
    for distance in distances:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        index = NearIndex(distance)
        started = time.perf_counter()
        for value in stored:
            index.add(value)
        added = time.perf_counter() - started
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        near = []
        for _ in range(queries):
            value = stored[rng.randrange(count)]
            for bit in rng.sample(range(64), rng.randint(1, distance) if distance else 0):
                value ^= 1 << bit
            near.append(value)
        far = [rng.getrandbits(64) for _ in range(queries)]
        for label, batch in (("near (found)", near), ("random (not found)", far)):
            started = time.perf_counter()
            found = sum(index.nearest(value) is not None for value in batch)
            rate = len(batch) / (time.perf_counter() - started)
            print(f"phash:{distance} at {count:,} hashes: {label:<20} {rate:>9,.0f} lookups/s "
                  f"({found}/{len(batch)} found)")
        print(f"phash:{distance}: {count / added:,.0f} adds/s; peak RSS grew {grown:,.0f} MiB")
        index.close()


def load_part(records: int) -> None:
    rng = random.Random(3)
    with tempfile.TemporaryDirectory() as folder:
        manifest = Path(folder) / "manifest.jsonl"
        with open(manifest, "w") as handle:
            for line in range(1, records + 1):
                handle.write(json.dumps({
                    "url": f"http://example.com/{line}.jpg", "key": "%032x" % rng.getrandbits(128), "line": line,
                    "status": "ok", "skipped": False, "path": f"{line}-abcdef0123.jpg", "bytes": 15320,
                    "sha256": "%064x" % rng.getrandbits(256), "format": "JPEG", "width": 320, "height": 240,
                    "phash": "%016x" % rng.getrandbits(64)}) + "\n")
        for mode in ("exact", "phash:4"):
            dedup = Dedup(mode, Path(folder))
            started = time.perf_counter()
            dedup.load(manifest)
            print(f"--dedup {mode}: read {records:,} records in {time.perf_counter() - started:.1f} s")
            dedup.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("transform", "nearhash", "load", "all"), default="all")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--hashes", type=int, default=1_000_000)
    parser.add_argument("--distances", default="4,8")
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args()
    if args.part in ("transform", "all"):
        transform_part(args.repeat)
    if args.part in ("nearhash", "all"):
        nearhash_part(args.hashes, [int(d) for d in args.distances.split(",")], args.queries)
    if args.part in ("load", "all"):
        load_part(args.records)


if __name__ == "__main__":
    main()
