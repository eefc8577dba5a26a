"""What validation costs per image, by format, on web-sized images (one thread, no I/O).

The images are the first --count of the web corpus that realistic.py serves (make_image at
scenarios.web_size: about 600 x 450). Each is checked --repeat times with
imgfetch.images.inspect_image at --verify none, fast and full, and opened and load()ed by plain
Pillow; the figure is the mean over the images of each one's median CPU time (this thread's, so
that other work on a busy machine counts less), in ms.

    python benchmarks/validation.py --count 200 --repeat 7
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import time

import benchlib
from PIL import Image
from scenarios import web_size

FORMATS = ("JPEG", "PNG", "WEBP", "GIF")  # imgfetch.server.FORMATS order: image i has FORMATS[i % 4]
ACCEPTED = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
MAX_PIXELS = 89_478_485


def pillow_load(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as im:
        im.load()


def timed(func, data: bytes, repeat: int) -> float:
    """Median CPU seconds (this thread's) of `repeat` calls."""
    times = []
    for _ in range(repeat):
        started = time.thread_time()
        func(data)
        times.append(time.thread_time() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="images, a quarter per format (default: 200)")
    parser.add_argument("--repeat", type=int, default=7, help="timings per image and check (default: 7)")
    parser.add_argument("--seed", type=int, default=0, help="make_image seed, as realistic.py's --corpus-seed")
    args = parser.parse_args()
    from imgfetch.images import inspect_image
    from imgfetch.server import make_image

    checks = {"--verify none": lambda d: inspect_image(d, formats=ACCEPTED, max_pixels=MAX_PIXELS, verify="none"),
              "--verify fast": lambda d: inspect_image(d, formats=ACCEPTED, max_pixels=MAX_PIXELS, verify="fast"),
              "--verify full": lambda d: inspect_image(d, formats=ACCEPTED, max_pixels=MAX_PIXELS, verify="full"),
              "Pillow open + load()": pillow_load}
    images: dict[str, list[bytes]] = {f: [] for f in FORMATS}
    sizes: dict[str, list[tuple[int, int]]] = {f: [] for f in FORMATS}
    for i in range(args.count):
        size = web_size(args.seed, i)
        images[FORMATS[i % 4]].append(make_image(args.seed, i, size))
        sizes[FORMATS[i % 4]].append(size)
    machine = benchlib.machine_info()
    print(f"Pillow {machine['Pillow']}, Python {machine['python']}, {machine['cpus']} CPUs, "
          f"load average at start {machine['loadavg_at_start']}; git {machine['git']}")
    print(f"{args.count} images (web_size, seed {args.seed}), median of {args.repeat} timings each, "
          "ms of CPU per image\n")
    head = ["format", "images", "mean px", "mean KB", *checks]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for fmt in FORMATS:
        datas = images[fmt]
        if not datas:
            continue
        w = statistics.fmean(s[0] for s in sizes[fmt])
        h = statistics.fmean(s[1] for s in sizes[fmt])
        cells = [fmt, str(len(datas)), f"{w:.0f} x {h:.0f}", f"{statistics.fmean(map(len, datas)) / 1000:.0f}"]
        for check in checks.values():
            cells.append(f"{1000 * statistics.fmean(timed(check, d, args.repeat) for d in datas):.2f}")
        print("| " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
