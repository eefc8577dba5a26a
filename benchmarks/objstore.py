"""WebDataset shards to a local folder and to S3 (a moto_server on loopback), side by side.

    python benchmarks/objstore.py --count 4000 --rounds 3

One built-in server (`imgfetch serve`, log-normal latency: median --latency-ms, sigma 1) and one moto S3
server, both on 127.0.0.1. Runs alternate local, s3, local, s3 ...; each is `imgfetch get` under treecpu.py
(CPU of the whole imgfetch process tree: the parent, with its upload threads, and the workers). The table
gives medians (min-max) of wall time, that CPU, and the moto server's CPU, and the s3/local ratio of the
medians. moto runs on the same cores, so the s3 column pays for the "cloud" too: an upper bound.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from benchlib import PY, run_measured, server_cpu_s, start_server, stop

MOTO = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


def start_moto() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([PY, "-c", MOTO], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    return proc, f"http://127.0.0.1:{int(proc.stdout.readline())}"


def span(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=80.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=128)
    parser.add_argument("--shard-size", type=int, default=1000)
    args = parser.parse_args()
    server, base = start_server(args.count, args.latency_ms, "--latency-spread", "1")
    moto, endpoint = start_moto()
    work = Path(tempfile.mkdtemp(prefix="imgfetch-objstore-"))
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_DEFAULT_REGION="us-east-1", IMGFETCH_CACHE=str(work / "cache"))
    results: dict[str, dict[str, list[float]]] = {"local": {}, "s3": {}}
    try:
        urls = work / "urls.txt"
        urls.write_bytes(urllib.request.urlopen(base + "/urls.txt").read())
        subprocess.run([PY, "-c", "import fsspec; fsspec.filesystem('s3').mkdir('bench')"], env=env, check=True)
        for round_ in range(args.rounds):
            for target in ("local", "s3"):
                out = str(work / f"out-{round_}") if target == "local" else f"s3://bench/run-{round_}"
                argv = [PY, "-m", "imgfetch", "get", str(urls), "-o", out, "-q", "--output-format", "webdataset",
                        "--shard-size", str(args.shard_size), "--workers", str(args.workers),
                        "--threads", str(args.threads)]
                moto_before = server_cpu_s([moto])
                run = run_measured(argv, work / "tree.json", work / f"{target}-{round_}.log", timeout=600, env=env)
                row = results[target]
                row.setdefault("wall_s", []).append(run["wall_s"])
                row.setdefault("cpu_s", []).append(run["cpu_s"])
                row.setdefault("moto_cpu_s", []).append(server_cpu_s([moto]) - moto_before)
                print(f"round {round_ + 1} {target:5s}: {run['wall_s']:.2f} s wall, {run['cpu_s']:.2f} s CPU, "
                      f"exit {run['returncode']}", file=sys.stderr)
    finally:
        stop(server)
        moto.stdin.close()
        stop(moto)
    print(f"{args.count} URLs, {args.workers} x {args.threads}, shard size {args.shard_size}, "
          f"latency median {args.latency_ms:g} ms (sigma 1), {args.rounds} rounds; median (min-max)")
    print(f"{'':6s} {'wall s':>22s} {'imgfetch CPU s':>22s} {'moto CPU s':>22s}")
    for target, row in results.items():
        print(f"{target:6s} {span(row['wall_s']):>22s} {span(row['cpu_s']):>22s} {span(row['moto_cpu_s']):>22s}")
    ratio = statistics.median(results["s3"]["wall_s"]) / statistics.median(results["local"]["wall_s"])
    print(f"s3 / local wall time: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
