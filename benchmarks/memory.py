"""Peak memory of `imgfetch get` on very long lists of URLs that fail fast (a closed loopback port).

For each list length it reports the largest peak RSS (VmHWM) of any process of the run (parent,
forkserver, workers), polled from /proc, and the wall time. Linux only.

    python benchmarks/memory.py --sizes 20000,200000,1000000
    python benchmarks/memory.py --sizes 200000,2000000 --done 0.99 -- --per-host 4
    python benchmarks/memory.py --sizes 20000,200000 --output-format webdataset --ok-share 0.1

--ok-share F sends a share F of the URLs (every 1/F-th) to `imgfetch serve` (no latency), so that
images are saved, and with --output-format webdataset or parquet, shards are written (the samples
column counts them, read back from the tars or parquet files).

--done F writes a manifest first in which a share F of the URLs (all but every 1/(1-F)-th) are
already downloaded, so the run is a resume that is mostly ready-made `skipped` records: the case
where --per-host used to buffer every ready record.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import EXTS
from treecpu import all_pids, stat_fields  # the /proc readers, shared


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_peaks(sid: int) -> dict[int, int]:
    """pid -> VmHWM in KiB for every process in the session."""
    peaks = {}
    for pid in all_pids():
        fields = stat_fields(pid)
        if fields is None or int(fields[3]) != sid:  # field 6 of stat: the session id
            continue
        try:
            with open(f"/proc/{pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        peaks[pid] = int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return peaks


SERVED = 1000  # images of the fast server; URLs cycle over them with a query that makes each distinct


def run(size: int, work: Path, extra: list[str], done: float = 0.0, ok_base: str | None = None,
        ok_share: float = 0.0) -> tuple[float, int, int, str]:
    port = closed_port()
    urls = work / f"urls-{size}.txt"
    every = round(1 / ok_share) if ok_base and ok_share else 0
    with open(urls, "w") as handle:
        for i in range(size):
            if every and i % every == 0:
                j = i % SERVED
                handle.write(f"{ok_base}/img/{j}.{EXTS[j % 4]}?u={i}\n")
            else:
                handle.write(f"http://127.0.0.1:{port}/img/{i}.jpg\n")
    out = work / f"out-{size}"
    if done:
        pretend_done(urls, out, done)
    argv = [sys.executable, "-m", "imgfetch", "get", str(urls), "-o", str(out), "-q", "--retries", "0",
            "--timeout", "2", *extra]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    peak: dict[int, int] = {}
    while proc.poll() is None:
        for pid, kib in session_peaks(proc.pid).items():
            peak[pid] = max(peak.get(pid, 0), kib)
        time.sleep(0.2)
    wall = time.perf_counter() - started
    err = proc.stderr.read().strip().splitlines()
    records = sum(1 for _ in open(out / "manifest.jsonl", "rb")) - (int(size * done) if done else 0)
    return wall, max(peak.values(), default=0), records, (err[-1] if err else "")


def pretend_done(urls: Path, out: Path, share: float) -> None:
    """A manifest saying that `share` of the URLs are done, all pointing at one real file."""
    from imgfetch.urls import normalized_key

    out.mkdir(parents=True)
    (out / "done.jpg").write_bytes(b"x" * 100)
    every = max(2, round(1 / (1 - share)))
    with open(urls) as src, open(out / "manifest.jsonl", "w") as manifest:
        for i, line in enumerate(src):
            if i % every:
                url = line.strip()
                manifest.write(json.dumps({"url": url, "key": normalized_key(url), "line": i + 1, "status": "ok",
                                           "path": "done.jpg", "bytes": 100}) + "\n")


def samples(out: Path) -> int:
    """Images in the shards of out (tars, or rows with an image in parquet files), else image files."""
    import tarfile

    tars, parquets = sorted(out.glob("*.tar")), sorted(out.glob("[0-9]*.parquet"))
    if tars:
        return sum(sum(1 for m in tarfile.open(p) if m.name.endswith(tuple("." + e for e in EXTS))) for p in tars)
    if parquets:
        import pyarrow.parquet as pq

        return sum(pq.read_table(p, columns=["key"]).column("key").drop_null().__len__() for p in parquets)
    return sum(1 for p in out.iterdir() if p.suffix.lstrip(".") in EXTS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20000,200000,1000000")
    parser.add_argument("--done", type=float, default=0.0, help="share of the list already done (a resume)")
    parser.add_argument("--output-format", default="files", help="imgfetch get --output-format (default: files)")
    parser.add_argument("--ok-share", type=float, default=0.0, help="share of URLs served by a fast server")
    parser.add_argument("extra", nargs="*", help="extra imgfetch get options, after --")
    args = parser.parse_args()
    extra = [*args.extra, "--output-format", args.output_format]
    print(f"machine: {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), Python {sys.version.split()[0]}, "
          f"load {os.getloadavg()[0]:.1f}; --output-format {args.output_format}, ok share {args.ok_share:g}")
    print(f"{'URLs':>9} {'wall s':>8} {'URLs/s':>8} {'peak RSS MB (largest process)':>30} {'records':>9} "
          f"{'samples':>8}  summary")
    server = None
    try:
        if args.ok_share:
            from benchlib import start_server, stop

            server, base = start_server(SERVED)
        with tempfile.TemporaryDirectory(prefix="imgfetch-memory-") as tmp:
            for size in (int(s) for s in args.sizes.split(",")):
                wall, peak_kib, records, summary = run(size, Path(tmp), extra, args.done,
                                                       base if server else None, args.ok_share)
                saved = samples(Path(tmp) / f"out-{size}")
                print(f"{size:>9} {wall:>8.1f} {size / wall:>8.0f} {peak_kib / 1024:>30.1f} {records:>9} {saved:>8}  "
                      f"{summary}", flush=True)
    finally:
        if server is not None:
            stop(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
