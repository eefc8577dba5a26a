"""Peak memory of `imgfetch get` on very long lists of URLs that fail fast (a closed loopback port).

For each list length it reports the largest peak RSS (VmHWM) of any process of the run (parent,
forkserver, workers), polled from /proc, and the wall time. Linux only.

    python benchmarks/memory.py --sizes 20000,200000,1000000
    python benchmarks/memory.py --sizes 200000,2000000 --done 0.99 -- --per-host 4

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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from treecpu import all_pids, stat_fields  # noqa: E402  (the /proc readers, shared)


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


def run(size: int, work: Path, extra: list[str], done: float = 0.0) -> tuple[float, int, int, str]:
    port = closed_port()
    urls = work / f"urls-{size}.txt"
    with open(urls, "w") as handle:
        for i in range(size):
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20000,200000,1000000")
    parser.add_argument("--done", type=float, default=0.0, help="share of the list already done (a resume)")
    parser.add_argument("extra", nargs="*", help="extra imgfetch get options, after --")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), Python {sys.version.split()[0]}")
    print(f"{'URLs':>9} {'wall s':>8} {'URLs/s':>8} {'peak RSS MB (largest process)':>30} {'records':>9}  summary")
    with tempfile.TemporaryDirectory(prefix="imgfetch-memory-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            wall, peak_kib, records, summary = run(size, Path(tmp), args.extra, args.done)
            print(f"{size:>9} {wall:>8.1f} {size / wall:>8.0f} {peak_kib / 1024:>30.1f} {records:>9}  {summary}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
