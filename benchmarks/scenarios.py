"""The served corpus and the URL lists the nginx benchmarks share (realistic.py, webshape.py,
vs_img2dataset.py, dask_shards.py).

- A corpus of images rendered by imgfetch.server.make_image, cached in /tmp/imgfetch-bench-corpus-N:
  small (64-320 px, about 12 KB) or web-sized (web_size: about 600 x 450, tens of KB).
- nginx (one worker, echo module) serves it; /v/<file>?s=SECONDS answers after its own delay.
  No Python in the hot path: a Python server would take CPU from the clients.
- Lists: lognormal (each image delayed log-normally: median 80 ms, sigma 1.0, p99 ~ 0.8 s, capped
  at 5 s), faulty (the lognormal list with ~10 % of its URLs replaced by failures that
  `imgfetch serve` answers) and uniformN (each image delayed N ms).
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import benchlib
from benchlib import EXTS
from PIL import Image

CAP_S = 30  # per-URL time cap given to every tool (as closely as each allows); a hang outlasts it
LOGNORMAL_MEDIAN_S, LOGNORMAL_SIGMA, LOGNORMAL_CAP_S = 0.080, 1.0, 5.0
FAULT_SHARES = (("404", 0.03), ("403", 0.01), ("410", 0.005), ("500", 0.015),
                ("hang", 0.015), ("drip", 0.005), ("reset", 0.01), ("html", 0.01))
FAULT_SERVER_COUNT = 100  # images of `imgfetch serve --count` (drip needs /drip/<i>.<ext of i>)
WEB_SIDE_MEDIAN, WEB_SIDE_SIGMA, WEB_SIDE_MIN, WEB_SIDE_MAX = 600, 0.3, 200, 1600
WEB_ASPECTS = ((4, 3), (3, 2), (1, 1), (16, 9), (3, 4), (2, 3))
WEB_ASPECT_WEIGHTS = (45, 20, 15, 10, 6, 4)


def lognormal_delays(rng: random.Random, n: int) -> list[float]:
    """n per-image delays in seconds (to the millisecond): log-normal, capped."""
    mu = math.log(LOGNORMAL_MEDIAN_S)
    return [round(min(LOGNORMAL_CAP_S, rng.lognormvariate(mu, LOGNORMAL_SIGMA)), 3) for _ in range(n)]


# --------------------------------------------------------------------------- corpus and nginx

def web_size(seed: int, i: int) -> tuple[int, int]:
    """A web image's (width, height): long side log-normal around 600 px, mostly 4:3 and 3:2."""
    rng = random.Random(f"web-size:{seed}:{i}")
    long_side = round(rng.lognormvariate(math.log(WEB_SIDE_MEDIAN), WEB_SIDE_SIGMA))
    long_side = min(WEB_SIDE_MAX, max(WEB_SIDE_MIN, long_side))
    a, b = rng.choices(WEB_ASPECTS, WEB_ASPECT_WEIGHTS)[0]
    return (long_side, round(long_side * b / a)) if a >= b else (round(long_side * a / b), long_side)


def ensure_corpus(size: int, seed: int, sizes: str = "small") -> Path:
    """size images from make_image(seed, i) as i.<ext>, cached in the temp folder between runs;
    sizes="web" renders them at web_size(seed, i)."""
    from imgfetch.server import make_image

    def render(i: int) -> bytes:
        return make_image(seed, i, web_size(seed, i) if sizes == "web" else None)
    path = Path(tempfile.gettempdir()) / (f"imgfetch-bench-corpus-{size}" + (f"-seed{seed}" if seed else "")
                                          + ("-web" if sizes == "web" else ""))
    marker = path / "corpus.json"
    try:
        info = json.loads(marker.read_text())
        if (info.get("count") == size and info.get("seed") == seed and info.get("sizes", "small") == sizes
                and all((path / f"{i}.{EXTS[i % 4]}").read_bytes() == render(i) for i in range(min(8, size)))
                and sum(1 for p in path.iterdir() if p.name != "corpus.json") == size):
            return path
    except (OSError, ValueError):
        pass
    print(f"rendering a corpus of {size} images into {path} ...", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".partial-", dir=path.parent))
    for i in range(size):
        (tmp / f"{i}.{EXTS[i % 4]}").write_bytes(render(i))
    (tmp / "corpus.json").write_text(json.dumps({"count": size, "seed": seed, "sizes": sizes}) + "\n")
    tmp.chmod(0o755)  # nginx's worker drops root and must read the files
    shutil.rmtree(path, ignore_errors=True)
    try:
        os.rename(tmp, path)
    except OSError:  # another run put it there first
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def start_nginx(corpus: Path, work: Path) -> tuple[subprocess.Popen, str]:
    block = ("location ~ ^/v/(?<p>.*)$ { echo_sleep $arg_s; echo_exec /static/$p; } "
             f"location /static/ {{ alias {corpus}/; }}")
    started = benchlib.start_nginx(work, block, modules=(benchlib.ECHO_MODULE,),
                                   http_extra=f"include {benchlib.MIME_TYPES}; "
                                              "default_type application/octet-stream; sendfile on;")
    if started is None:
        sys.exit("nginx is not installed (apt-get install nginx-light libnginx-mod-http-echo)")
    return started


def check_nginx(base: str, corpus: Path) -> None:
    """Content-Type, bytes and delay of one image per format; raises on any mismatch."""
    types = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif"}
    for i in range(4):
        name = f"{i}.{EXTS[i]}"
        for delay in (0.0, 0.2):
            started = time.perf_counter()
            with urllib.request.urlopen(f"{base}/v/{name}?s={delay:g}&u=check", timeout=10) as resp:
                body, ctype = resp.read(), resp.headers.get("Content-Type")
            took = time.perf_counter() - started
            if ctype != types[EXTS[i]] or body != (corpus / name).read_bytes() or took < delay:
                raise RuntimeError(f"nginx check failed for {name}?s={delay}: Content-Type {ctype}, "
                                   f"{len(body)} bytes, {took:.3f} s")


def check_fault_server(base: str) -> None:
    for path, want in (("/status/404?u=check", 404), ("/status/500?u=check", 500), ("/html-as-jpeg?u=check", 200),
                       (f"/img/1.{EXTS[1]}", 200)):
        try:
            with urllib.request.urlopen(base + path, timeout=10) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        if status != want:
            raise RuntimeError(f"fault server check failed: {path} answered {status}, not {want}")


@dataclass
class Scenario:
    name: str
    title: str
    urls: list[str]
    kinds: list[str]  # "image" or the fault kind, per URL
    delays: list[float] = field(default_factory=list)  # per image URL, seconds

    @property
    def expected(self) -> int:
        return sum(1 for k in self.kinds if k == "image")

    def describe(self) -> dict:
        faults: dict[str, int] = {}
        for kind in self.kinds:
            if kind != "image":
                faults[kind] = faults.get(kind, 0) + 1
        d = sorted(self.delays)
        stats = {}
        if d:
            stats = {"delay_median_s": round(statistics.median(d), 4),
                     "delay_p99_s": round(d[min(len(d) - 1, int(0.99 * len(d)))], 4),
                     "delay_max_s": round(d[-1], 4), "delay_mean_s": round(statistics.fmean(d), 4)}
        return {"title": self.title, "urls": len(self.urls), "image_urls": self.expected, "faults": faults, **stats}


def image_url(base: str, i: int, corpus_size: int, delay: float) -> str:
    j = i % corpus_size
    return f"{base}/v/{j}.{EXTS[j % 4]}?s={delay:.3f}&u={i}"


def lognormal(base: str, n: int, corpus_size: int, seed: int) -> Scenario:
    delays = lognormal_delays(random.Random(seed), n)
    urls = [image_url(base, i, corpus_size, d) for i, d in enumerate(delays)]
    return Scenario("lognormal", f"log-normal delays (median {LOGNORMAL_MEDIAN_S * 1000:g} ms, sigma "
                    f"{LOGNORMAL_SIGMA:g}, cap {LOGNORMAL_CAP_S:g} s), {n} distinct images",
                    urls, ["image"] * n, delays)


def fault_url(kind: str, fault_base: str, i: int) -> str:
    if kind in ("404", "403", "410", "500"):
        return f"{fault_base}/status/{kind}?u={i}"
    if kind == "hang":
        return f"{fault_base}/hang?seconds={CAP_S}&u={i}"
    if kind == "drip":
        k = i % FAULT_SERVER_COUNT
        return f"{fault_base}/drip/{k}.{EXTS[k % 4]}?interval=1&u={i}"
    if kind == "reset":
        return f"{fault_base}/reset?u={i}"
    if kind == "html":
        return f"{fault_base}/html-as-jpeg?u={i}"
    raise ValueError(kind)


def faulty(base: str, fault_base: str, n: int, corpus_size: int, seed: int) -> Scenario:
    sc = lognormal(base, n, corpus_size, seed)
    rng = random.Random(seed + 1)
    kinds = [kind for kind, share in FAULT_SHARES for _ in range(round(n * share))]
    positions = rng.sample(range(n), len(kinds))  # random positions, in random order
    delays = list(sc.delays)
    for pos, kind in zip(positions, kinds):
        sc.urls[pos] = fault_url(kind, fault_base, pos)
        sc.kinds[pos] = kind
        delays[pos] = None
    sc.delays = [d for d in delays if d is not None]
    sc.name = "faulty"
    sc.title = (f"the lognormal list with {len(kinds)} of {n} URLs ({len(kinds) / n:.1%}) replaced by failures: "
                + ", ".join(f"{k} {s:.1%}" for k, s in FAULT_SHARES))
    return sc


def uniform(base: str, name: str, m: int, delay_ms: float, corpus_size: int) -> Scenario:
    delay = delay_ms / 1000
    urls = [image_url(base, i, corpus_size, delay) for i in range(m)]
    return Scenario(name, f"{m} distinct images, each delayed {delay_ms:g} ms", urls, ["image"] * m, [delay] * m)


def describe_corpus(corpus: Path) -> str:
    """Mean size and bytes per format of the corpus nginx serves."""
    by: dict[str, list[tuple[int, int, int]]] = {}
    for p in sorted(corpus.iterdir()):
        if p.suffix.lstrip(".") in EXTS:
            with Image.open(p) as im:
                by.setdefault(p.suffix.lstrip("."), []).append((im.width, im.height, p.stat().st_size))
    allv = [v for vs in by.values() for v in vs]
    parts = [f"{ext} {statistics.fmean(b for _, _, b in vs) / 1000:.0f} KB" for ext, vs in by.items()]
    return (f"{len(allv)} images, mean {statistics.fmean(w for w, _, _ in allv):.0f} x "
            f"{statistics.fmean(h for _, h, _ in allv):.0f} px, "
            f"mean {statistics.fmean(b for *_, b in allv) / 1000:.0f} KB "
            f"({', '.join(parts)})")
