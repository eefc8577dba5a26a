"""Side-by-side throughput: imgfetch get (defaults) against the classic ProcessPoolExecutor(3) script,
a hand-written ThreadPoolExecutor(128) and, when installed, curl --parallel and nginx as a 0 ms server.

Runs are interleaved (A B C A B C ...) in one process tree so machine noise hits every tool alike;
the median of --rounds runs is reported, with ratios against imgfetch.

    python benchmarks/compare.py --count 2000 --latencies 50,200 --rounds 3
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402  (helpers shared with realistic.py)
from benchlib import HERE, PY, start_server, stop  # noqa: E402


def start_nginx(root: Path, work: Path) -> tuple[subprocess.Popen, str] | None:
    """nginx serving `root` statically (None when nginx is not installed)."""
    return benchlib.start_nginx(work, f"root {root};")


def tools(urls_file: Path, with_curl: bool, with_classic: bool) -> dict[str, callable]:
    def imgfetch(out: Path) -> list[str]:
        return [PY, "-m", "imgfetch", "get", str(urls_file), "-o", str(out), "-q"]

    def classic(out: Path) -> list[str]:
        return [PY, str(HERE / "classic.py"), str(urls_file), str(out)]

    def threads128(out: Path) -> list[str]:
        return [PY, str(HERE / "threadpool.py"), str(urls_file), str(out), "128"]

    chosen = {"imgfetch get (defaults)": imgfetch, "ThreadPoolExecutor(128)": threads128}
    if with_classic:
        chosen["classic ProcessPoolExecutor(3)"] = classic
    if with_curl:
        def curl(out: Path) -> list[str]:
            config = out.parent / (out.name + ".curl")
            lines = []
            for i, url in enumerate(urls_file.read_text().split()):
                lines.append(f'url = "{url}"\noutput = "{out}/{i}"')
            config.write_text("\n".join(lines) + "\n")
            return ["curl", "--parallel", "--parallel-max", "200", "-s", "-K", str(config)]
        chosen["curl --parallel-max 200"] = curl
    return chosen


def measure(urls: list[str], rounds: int, with_curl: bool, work: Path,
            with_classic: bool = True) -> dict[str, list[float]]:
    urls_file = work / "urls.txt"
    urls_file.write_text("\n".join(urls) + "\n")
    chosen = tools(urls_file, with_curl, with_classic)
    times: dict[str, list[float]] = {name: [] for name in chosen}
    for r in range(rounds):
        for name, command in chosen.items():
            out = work / f"out-{r}-{abs(hash(name))}"
            out.mkdir()
            argv = command(out)
            started = time.perf_counter()
            done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            elapsed = time.perf_counter() - started
            files = sum(1 for p in out.rglob("*") if p.is_file() and p.name != "manifest.jsonl")
            if done.returncode != 0 or files != len(urls):
                print(f"  ! {name}: exit {done.returncode}, {files}/{len(urls)} files; {done.stderr.strip()[-200:]}")
            times[name].append(elapsed)
            shutil.rmtree(out, ignore_errors=True)
    return times


def report(title: str, n: int, times: dict[str, list[float]]) -> None:
    print(f"\n## {title}: {n} images, median of {len(next(iter(times.values())))} interleaved runs")
    ours = statistics.median(times["imgfetch get (defaults)"])
    print(f"{'tool':<32} {'median s':>9} {'images/s':>9} {'imgfetch ÷ tool':>16}   runs (s)")
    for name, values in times.items():
        median = statistics.median(values)
        runs = " ".join(f"{v:.2f}" for v in values)
        print(f"{name:<32} {median:>9.2f} {n / median:>9.1f} {median / ours:>15.2f}x   {runs}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--latencies", default="50,200", help="built-in server latencies in ms")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-nginx", action="store_true")
    parser.add_argument("--classic-max-latency", type=float, default=1000.0,
                        help="skip the classic 3-process script above this latency (it needs count x latency / 3 s)")
    args = parser.parse_args()
    with_curl = shutil.which("curl") is not None
    print(f"machine: {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), Python {sys.version.split()[0]}")
    if not with_curl:
        print("curl not installed: no curl row")
    for latency in (float(x) for x in args.latencies.split(",")):
        with tempfile.TemporaryDirectory(prefix="imgfetch-compare-") as tmp:
            server, base = start_server(args.count, latency)
            try:
                urls = urllib.request.urlopen(base + "/urls.txt").read().decode().split()
                for url in urls[:50]:
                    urllib.request.urlopen(url).read()  # warm the server's image cache a little
                with_classic = latency <= args.classic_max_latency
                if not with_classic:
                    print(f"classic script skipped at {latency:g} ms (--classic-max-latency)")
                times = measure(urls, args.rounds, with_curl, Path(tmp), with_classic)
            finally:
                stop(server)
            report(f"built-in server, {latency:g} ms latency", len(urls), times)
    if args.no_nginx:
        return 0
    with tempfile.TemporaryDirectory(prefix="imgfetch-compare-nginx-") as tmp:
        root, work = Path(tmp) / "www", Path(tmp) / "nginx"
        root.mkdir()
        work.mkdir()
        for folder in (Path(tmp), root):
            folder.chmod(0o755)  # nginx's workers drop root and must read the files
        server, base = start_server(args.count, 0)
        try:  # the same synthetic images, written out for nginx to serve statically
            urls = urllib.request.urlopen(base + "/urls.txt").read().decode().split()
            for url in urls:
                (root / url.rsplit("/", 1)[1]).write_bytes(urllib.request.urlopen(url).read())
        finally:
            stop(server)
        started = start_nginx(root, work)
        if started is None:
            print("\n## 0 ms (nginx): nginx is not installed (apt-get install nginx-light); row skipped")
            return 0
        nginx, nbase = started
        try:
            urls = [f"{nbase}/{u.rsplit('/', 1)[1]}" for u in urls]
            times = measure(urls, args.rounds, with_curl, Path(tmp))
        finally:
            stop(nginx)
        report("nginx, 0 ms latency (static files)", len(urls), times)
    return 0


if __name__ == "__main__":
    sys.exit(main())
