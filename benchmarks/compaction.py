"""Peak memory of compacting a long manifest: the bytes a record that compaction really holds.

It writes a manifest of --lines records in a temporary folder: two runs over a list of lines / 2
URLs, each run's records in completion order (shuffled within windows of 64 lines), about 10 %
failing in the first run and retried in the second, 1 % of the list's lines repeating an earlier
URL (`duplicate` records). Then a fresh interpreter imports imgfetch, reads its peak RSS (VmHWM,
the baseline), compacts the manifest and reads VmHWM again. The difference, over the records
read, is the bytes a record. Linux only.

    python benchmarks/compaction.py --lines 4000000
    python benchmarks/compaction.py --source /tmp/old-checkout   # the imgfetch of another checkout
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WINDOW = 64  # records of a run finish out of list order, but only locally
CHILD = """
import json, resource, sys, time
def hwm():
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmHWM:"))
import imgfetch
from imgfetch.store.manifest import compact
from pathlib import Path
base = hwm()
started = time.perf_counter()
before, after = compact(Path(sys.argv[1]))
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"base": base, "peak": hwm(), "seconds": time.perf_counter() - started,
                  "cpu": usage.ru_utime + usage.ru_stime,
                  "before": before, "after": after, "module": imgfetch.__file__}))
"""


def record(line: int, url_line: int, status: str) -> str:
    """One manifest line, shaped like the records a real run writes."""
    url = f"https://images.example.com/photos/{url_line // 1000}/{url_line:09d}-large.jpg?w=1024"
    key = hashlib.md5(url.encode()).hexdigest()
    if status == "duplicate":
        fields = {"path": None, "error": f"same URL as line {url_line}", "error_kind": None}
    elif status == "failed":
        fields = {"path": None, "error": "HTTP 503 Service Unavailable", "error_kind": "http"}
    else:
        fields = {"path": f"{key[:2]}/{key}.jpg", "error": None, "error_kind": None}
    ok = fields["path"] is not None
    return json.dumps({
        "url": url, "key": key, "line": line, "status": status, "path": fields["path"],
        "bytes": 48213 + line % 9000 if ok else None,
        "sha256": hashlib.sha256(key.encode()).hexdigest() if ok else None,
        "format": "jpeg" if ok else None, "width": 1024 if ok else None, "height": 768 if ok else None,
        "http_status": 200 if ok else (503 if status == "failed" else None), "final_url": None,
        "error": fields["error"], "error_kind": fields["error_kind"], "attempts": 1 if ok else 3,
        "elapsed_s": round(0.05 + line % 97 / 100, 3), "pid": 4100 + line % 8, "fetched_at": "2025-05-01T12:00:00Z",
    }) + "\n"


def write_manifest(path: Path, lines: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    urls = lines // 2
    source = [i - 500 if i > 500 and i % 100 == 0 else i for i in range(1, urls + 1)]  # 1 %: duplicates
    failed = {i for i in range(1, urls + 1) if rng.random() < 0.1}
    with open(path, "w") as handle:
        for run in (1, 2):
            order = list(range(1, urls + 1))
            for start in range(0, urls, WINDOW):
                window = order[start:start + WINDOW]
                rng.shuffle(window)
                order[start:start + WINDOW] = window
            for line in order:
                url_line = source[line - 1]
                if url_line != line:
                    status = "duplicate"
                elif line in failed:
                    status = "failed" if run == 1 or rng.random() < 0.5 else "ok"
                else:
                    status = "ok" if run == 1 else "skipped"
                handle.write(record(line, url_line, status))


def measure(manifest: Path, source: str | None) -> dict:
    """Compact in a fresh interpreter that imports imgfetch from ``source`` (default: this checkout)."""
    env = {**os.environ, "PYTHONPATH": source or str(REPO)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(manifest)], env=env, cwd=manifest.parent,
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=4_000_000, help="manifest records (default: %(default)s)")
    parser.add_argument("--source", help="a checkout whose imgfetch to measure (PYTHONPATH) instead of this one")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="imgfetch-compaction-") as tmp:
        manifest = Path(tmp) / "manifest.jsonl"
        write_manifest(manifest, args.lines)
        size = manifest.stat().st_size
        result = measure(manifest, args.source)
    grown = result["peak"] - result["base"]
    print(f"imgfetch from {result['module']}")
    print(f"manifest: {result['before']} records ({size / 1e6:.0f} MB) -> {result['after']} records")
    print(f"compaction: {result['seconds']:.1f} s ({result['cpu']:.1f} s CPU, import included); "
          f"peak RSS {result['peak'] / 2**20:.1f} MiB, {result['base'] / 2**20:.1f} MiB after import: "
          f"{grown / 2**20:.1f} MiB more")
    print(f"= {grown / result['before']:.1f} bytes a record read, {grown / result['after']:.1f} a record kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
