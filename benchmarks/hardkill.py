"""What a hard kill leaves: `imgfetch get` SIGKILLed as a whole process group, again and again,
against the built-in server's /varying/ route (different bytes on every request, like random
placeholder services), then one plain re-run.

After each kill it counts the images in OUT that no manifest record names (orphans); after the
re-run, its exit code, failed URLs and orphans. --code runs another checkout's imgfetch (the
server always comes from this one), so two commits can be compared on the same machine:

    python benchmarks/hardkill.py --urls 2000 --kills 6
    python benchmarks/hardkill.py --urls 2000 --kills 6 --code /path/to/old/checkout
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imgfetch.server import ImageServer


def ok_records(manifest: Path) -> int:
    try:
        return manifest.read_bytes().count(b'"status": "ok"')
    except FileNotFoundError:
        return 0


def orphans(out: Path) -> int:
    manifest = out / "manifest.jsonl"
    named = set()
    if manifest.exists():
        for line in manifest.read_bytes().splitlines():
            try:
                named.add(json.loads(line).get("path"))
            except ValueError:
                pass
    return sum(1 for p in out.iterdir() if p.suffix == ".jpg" and p.name not in named)


def blocked(out: Path) -> int:
    """Records of every run that failed because a file was in the way."""
    return (out / "manifest.jsonl").read_bytes().count(b"already there")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--after", type=int, default=150, help="new ok records before each kill")
    parser.add_argument("--code", help="a checkout whose imgfetch runs (default: this one)")
    parser.add_argument("extra", nargs="*", help="more `imgfetch get` arguments, after --")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(Path(args.code or Path(__file__).parent.parent).resolve())}
    with ImageServer(count=4 * args.urls, latency_ms=30, latency_spread=1.0, seed=5) as server, \
            tempfile.TemporaryDirectory() as tmp:
        urls = Path(tmp) / "urls.txt"
        urls.write_text("".join(server.url(f"/varying/{4 * i}.jpg") + "\n" for i in range(args.urls)))
        out = Path(tmp) / "out"
        argv = [sys.executable, "-m", "imgfetch", "get", str(urls), "-o", str(out), "--retries", "0",
                "--workers", "2", "--threads", "64", *args.extra]
        counts = []
        for _ in range(args.kills):
            start = ok_records(out / "manifest.jsonl")
            proc = subprocess.Popen(argv, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)  # cwd: `-m` puts it first on sys.path
            deadline = time.monotonic() + 60
            while ok_records(out / "manifest.jsonl") < start + args.after and time.monotonic() < deadline:
                time.sleep(0.005)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            counts.append(orphans(out))
        print(f"orphans after each SIGKILL: {counts}")
        rerun = subprocess.run(argv, env=env, cwd=tmp, capture_output=True, text=True)
        summary = [line for line in rerun.stderr.splitlines() if line.startswith("done:")]
        print(f"re-run: exit {rerun.returncode}; {summary[0] if summary else rerun.stderr.strip()[-300:]}")
        print(f"orphans after the re-run: {orphans(out)}; records saying 'already there': {blocked(out)}")


if __name__ == "__main__":
    main()
