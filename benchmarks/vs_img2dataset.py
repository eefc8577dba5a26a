"""imgfetch and img2dataset side by side, both writing WebDataset shards from the same long-tail list.

The list and the server are realistic.py's lognormal scenario: nginx serves a corpus of images, each URL
answered after its own log-normal delay (median 80 ms, sigma 1, cap 5 s). Runs are interleaved
(A B A B ...), each wrapped in treecpu.py (CPU of the whole process tree), and each figure is the median
of --rounds runs. Both tools get the same processes x threads, shard size, per-read timeout and retries;
img2dataset runs from its own virtual environment (--img2dataset, default /work/i2d/bin/img2dataset).
Images are counted as the image members of the tars each run wrote, read back with tarfile.

    python benchmarks/vs_img2dataset.py --count 4000 --rounds 3
    python benchmarks/vs_img2dataset.py --count 4000 --rounds 3 --resize 256
    python benchmarks/vs_img2dataset.py --count 4000 --rounds 3 --resize 256 --image-sizes web

--image-sizes: small (the default, so older tables stay comparable) serves make_image's 64-320 px images
(about 12 KB; 93 % of them are enlarged to 256 px), web serves web-sized ones (scenarios.web_size: about
600 x 450 px, about 81 KB; 95 % are shrunk), as realistic.py --image-sizes does. Both: a quarter each JPEG, PNG,
WebP and GIF.

Without --resize: imgfetch keeps every image as served; img2dataset runs with --resize_mode no, once
re-encoding to JPEG (its default) and once with --skip_reencode True (bytes kept, as imgfetch does).
With --resize N: both resize to N with keep_ratio (imgfetch --resize N --resize-mode keep_ratio;
img2dataset --resize_mode keep_ratio --image_size N) and re-encode as --encode says: jpg by default, img2dataset's
own default (imgfetch --encode-format jpg, img2dataset --encode_format jpg), so both write the same kind of
file; --encode own leaves imgfetch's default (each image's format: PNG and WebP cost far more to encode), and each run prints the smaller sides of the first
200 images read back from its tars (all N when both did resize).

Bytecode: a process that imports a module without its .pyc compiles it from source, and with
PYTHONDONTWRITEBYTECODE set (as on the shared machine) it does so in every process of every run: 1-2 s of
CPU per process for pandas, pyarrow, requests and Pillow. pip writes .pyc files as it installs; uv does not
unless given --compile-bytecode. The script says, for each tool's environment, how many of its key modules
lack bytecode; --compile-bytecode first compiles both environments' site-packages (python -m compileall),
so that neither tool pays for compiling.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import benchlib
from benchlib import PY
from scenarios import check_nginx, ensure_corpus, lognormal, start_nginx

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".avif")


def tool_argv(tool: str, urls: Path, out: Path, args: argparse.Namespace) -> list[str]:
    common_i2d = [args.img2dataset, "--url_list", str(urls), "--input_format", "txt", "--output_format", "webdataset",
                  "--output_folder", str(out), "--processes_count", str(args.processes),
                  "--thread_count", str(args.threads), "--number_sample_per_shard", str(args.shard_size),
                  "--timeout", str(args.timeout), "--retries", str(args.retries), "--enable_wandb", "False",
                  "--distributor", "multiprocessing"]
    if tool == "imgfetch":
        resize = ["--resize", str(args.resize), "--resize-mode", "keep_ratio"] if args.resize else []
        if args.resize and args.encode != "own":
            resize += ["--encode-format", args.encode]
        return [PY, "-m", "imgfetch", "get", str(urls), "-o", str(out), "-q", "--output-format", "webdataset",
                "--shard-size", str(args.shard_size), "--workers", str(args.processes), "--threads", str(args.threads),
                "--timeout", str(args.timeout), "--retries", str(args.retries), *resize]
    if tool == "img2dataset":
        if args.resize:
            return [*common_i2d, "--resize_mode", "keep_ratio", "--image_size", str(args.resize),
                    "--encode_format", "jpg" if args.encode == "own" else args.encode]
        return [*common_i2d, "--resize_mode", "no"]
    if tool == "img2dataset-keep-bytes":
        return [*common_i2d, "--resize_mode", "no", "--skip_reencode", "True"]
    raise ValueError(tool)


def images_in(out: Path) -> int:
    """Image members of every complete tar in out (a tar that does not read to its end counts 0)."""
    total = 0
    for path in sorted(out.rglob("*.tar")):
        try:
            with tarfile.open(path) as tar:
                total += sum(1 for m in tar if m.isfile() and m.name.lower().endswith(IMAGE_SUFFIXES))
        except (tarfile.TarError, OSError):
            continue
    return total


def smaller_sides(out: Path, limit: int = 200) -> dict[int, int]:
    """How many of the first ``limit`` images in out's tars have each smaller side (keep_ratio N: all N)."""
    from collections import Counter

    from PIL import Image

    sides: Counter[int] = Counter()
    for path in sorted(out.rglob("*.tar")):
        try:
            with tarfile.open(path) as tar:
                for member in tar:
                    if len(sides) > limit or sum(sides.values()) >= limit:
                        return dict(sides)
                    if member.isfile() and member.name.lower().endswith(IMAGE_SUFFIXES):
                        handle = tar.extractfile(member)
                        assert handle is not None
                        with Image.open(handle) as image:
                            sides[min(image.size)] += 1
        except (tarfile.TarError, OSError):
            continue
    return dict(sides)


KEY_MODULES = {"imgfetch": ("imgfetch.engine.worker", "requests", "urllib3", "PIL.Image", "pyarrow.parquet", "pandas"),
               "img2dataset": ("img2dataset", "requests", "PIL.Image", "pyarrow.parquet", "pandas", "cv2")}
_MISSING_PYC = """import importlib.util, os, sys
missing = []
for name in sys.argv[1:]:
    spec = importlib.util.find_spec(name)
    origin = spec and spec.origin
    if origin and origin.endswith(".py") and not os.path.exists(importlib.util.cache_from_source(origin)):
        missing.append(name)
print(" ".join(missing))"""


def missing_bytecode(python: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` the interpreter ``python`` would compile from source on import (no .pyc)."""
    done = subprocess.run([python, "-c", _MISSING_PYC, *modules], capture_output=True, text=True, timeout=120)
    return done.stdout.split()


def compile_bytecode(python: str) -> None:
    """Compile the interpreter's site-packages (and so its tool) to .pyc files, as pip does when it installs."""
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([python, "-m", "compileall", "-q", "-j", "0", site], stdout=subprocess.DEVNULL, check=False)
    here = Path(__file__).resolve().parents[1] / "imgfetch"  # an editable install's sources are not in site
    if python == PY:
        subprocess.run([python, "-m", "compileall", "-q", str(here)], stdout=subprocess.DEVNULL, check=False)


def version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return done.stdout.strip() or done.stderr.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=128)
    parser.add_argument("--shard-size", type=int, default=1000,
                        help="samples per shard (img2dataset also splits its input by it: below count/processes, "
                             "all its processes work)")
    parser.add_argument("--timeout", type=int, default=10)
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--resize", type=int, default=0, help="resize to N with keep_ratio")
    parser.add_argument("--encode", default="jpg", choices=("jpg", "png", "webp", "own"),
                        help="with --resize: what both tools encode resized images as (img2dataset's default is jpg; "
                             "own: imgfetch keeps each image's format, PNG for GIFs, while img2dataset writes jpg)")
    parser.add_argument("--tools", default="imgfetch,img2dataset,img2dataset-keep-bytes")
    parser.add_argument("--img2dataset", default="/work/i2d/bin/img2dataset")
    parser.add_argument("--corpus-size", type=int, default=2000)
    parser.add_argument("--image-sizes", choices=("small", "web"), default="small",
                        help="images served: small (64-320 px, ~12 KB) or web (~600 x 450 px, ~81 KB) (default: small)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--run-timeout", type=float, default=600.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--compile-bytecode", action="store_true",
                        help="compile both tools' environments to .pyc first (see the module docstring)")
    args = parser.parse_args()
    tools = [t for t in args.tools.split(",") if t and not (args.resize and t == "img2dataset-keep-bytes")]
    if not shutil.which(args.img2dataset):
        sys.exit(f"{args.img2dataset}: not found (python3 -m venv /work/i2d && /work/i2d/bin/pip install img2dataset)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # img2dataset's albumentations checks for updates
    i2d_python = str(Path(args.img2dataset).with_name("python"))
    versions = {"imgfetch": version([PY, "-m", "imgfetch", "--version"]),
                "img2dataset": version([i2d_python, "-c", "import importlib.metadata as m; print(m.version('img2dataset'))"])}
    interpreters = {"imgfetch": PY, "img2dataset": i2d_python}
    if args.compile_bytecode:
        for python in interpreters.values():
            compile_bytecode(python)
    no_pyc = {tool: missing_bytecode(python, KEY_MODULES[tool]) for tool, python in interpreters.items()}
    print(f"machine: {benchlib.machine_info()}\nversions: {versions}\nload: {os.getloadavg()}")
    for tool, missing in no_pyc.items():
        print(f"{tool}: no bytecode for {', '.join(missing)}: every process compiles them (--compile-bytecode)"
              if missing else f"{tool}: key modules have bytecode")
    corpus = ensure_corpus(args.corpus_size, 0, args.image_sizes)
    print(f"images: {args.image_sizes} ({corpus})")
    work = Path(tempfile.mkdtemp(prefix="imgfetch-vs-i2d-"))
    work.chmod(0o755)
    nginx = None
    runs: list[dict] = []
    try:
        nginx, base = start_nginx(corpus, work / "nginx")
        check_nginx(base, corpus)
        scenario = lognormal(base, args.count, args.corpus_size, args.seed)
        urls = work / "urls.txt"
        urls.write_text("".join(u + "\n" for u in scenario.urls))
        for tool in tools:
            print(f"{tool}: {shlex.join(tool_argv(tool, Path('urls.txt'), Path('OUT'), args))}")
        for r in range(args.rounds):
            for tool in tools:
                run_dir = work / f"r{r + 1}-{tool}"
                out = run_dir / "out"
                out.mkdir(parents=True)
                load = os.getloadavg()[0]
                res = benchlib.run_measured(tool_argv(tool, urls, out, args), run_dir / "treecpu.json",
                                            run_dir / "log.txt", args.run_timeout)
                images = images_in(out)
                sides = smaller_sides(out) if args.resize else {}
                run = {"round": r + 1, "tool": tool, "wall_s": res["wall_s"], "cpu_s": res["cpu_s"], "images": images,
                       "returncode": res["returncode"], "timed_out": res["timed_out"], "load_1m": round(load, 2),
                       "smaller_sides": sides}
                runs.append(run)
                print(f"  round {r + 1} {tool:<24} {res['wall_s']:7.2f} s  {images:>6}/{args.count} images  "
                      f"{images / res['wall_s']:7.0f} images/s  cpu {res['cpu_s']:7.2f} s  exit {res['returncode']}  "
                      f"load {load:.1f}", flush=True)
                if args.resize:  # keep_ratio N: every image's smaller side is N
                    print(f"    smaller side of {sum(sides.values())} images read back: {sides}")
                if images < args.count * 0.98:
                    print("    " + benchlib.log_tail(run_dir / "log.txt", 600).replace("\n", "\n    "))
                shutil.rmtree(out, ignore_errors=True)
    finally:
        benchlib.stop(nginx)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n| tool | wall s (median of {args.rounds}) | runs s | images | images/s | CPU s | imgfetch ÷ tool |")
    print("|---|---|---|---|---|---|---|")
    rate = {t: statistics.median(r["images"] / r["wall_s"] for r in runs if r["tool"] == t) for t in tools}
    for tool in tools:
        mine = [r for r in runs if r["tool"] == tool]
        walls = " ".join(f"{r['wall_s']:.2f}" for r in mine)
        ratio = rate.get("imgfetch", float("nan")) / rate[tool] if rate[tool] else float("nan")
        print(f"| {tool} | {statistics.median(r['wall_s'] for r in mine):.2f} | {walls} | "
              f"{statistics.median(r['images'] for r in mine):.0f}/{args.count} | {rate[tool]:.0f} | "
              f"{statistics.median(r['cpu_s'] for r in mine):.2f} | {ratio:.2f}× |")
    print(f"load after: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps({"versions": versions, "no_bytecode": no_pyc, "args": {k: str(v) for k, v in vars(args).items()},
                                         "runs": runs, "images_per_s": rate}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
