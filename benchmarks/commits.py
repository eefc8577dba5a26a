"""`imgfetch get` at two commits, side by side: did a change (a refactor, say) cost speed or CPU?

Each commit is checked out into its own temporary git worktree and run with PYTHONPATH pointing
at it, against one built-in server with a log-normal latency and the `realistic` fault mix
(about 10 % failures: 4xx/5xx, resets, hangs, drips). Runs alternate A B A B ... so machine
noise hits both alike; the table gives medians and the min-max of wall time, CPU seconds of the
whole process tree (parent, fork server and workers, measured by treecpu.py as a child subreaper)
and URLs saved.

    python benchmarks/commits.py a313a27 HEAD --count 3000 --rounds 4
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from benchlib import HERE, PY, start_server, stop

REPO = Path(__file__).resolve().parents[1]


def worktree(rev: str, parent: Path) -> Path:
    path = parent / rev.replace("/", "_")
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), rev],
                   check=True, capture_output=True)
    return path


def one_run(tree: Path, urls: Path, out: Path, extra: list[str]) -> tuple[float, float, int]:
    """(wall s, CPU s of the process tree, lines that ended ok) of one `imgfetch get`."""
    report = out.with_suffix(".json")
    subprocess.run([PY, str(HERE / "treecpu.py"), "--json", str(report), "--",
                    PY, "-m", "imgfetch", "get", str(urls), "-o", str(out), "-q", *extra],
                   env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree, check=False)
    tree_cpu = json.loads(report.read_text())
    ok = sum('"status": "ok"' in line for line in (out / "manifest.jsonl").read_text().splitlines())
    return tree_cpu["wall_s"], tree_cpu["cpu_s"], ok


def spread(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revs", nargs=2, metavar="REV", help="two git revisions, e.g. a313a27 HEAD")
    parser.add_argument("--count", type=int, default=3000, help="URLs in the list (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=4, help="runs per commit, alternating (default: %(default)s)")
    parser.add_argument("--latency-ms", default="60", help="median latency (default: %(default)s)")
    parser.add_argument("--latency-spread", default="1.0", help="log-normal sigma (default: %(default)s)")
    parser.add_argument("--faults", default="realistic", help="fault mix of the server; '' for none (default: %(default)s)")
    parser.add_argument("--get", default="--max-time 10 --timeout 5",
                        help="extra options for both runs, as one string (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="imgfetch-commits-") as tmp:
        work = Path(tmp)
        trees = [worktree(rev, work) for rev in args.revs]
        faults = ["--faults", args.faults] if args.faults else []
        server, base = start_server(args.count, float(args.latency_ms), "--latency-spread", args.latency_spread,
                                    "--hang-s", "60", *faults)
        try:
            urls = work / "urls.txt"
            urls.write_bytes(urllib.request.urlopen(f"{base}/urls.txt", timeout=30).read())
            results: dict[str, list[tuple[float, float, int]]] = {rev: [] for rev in args.revs}
            for n in range(args.rounds):
                for rev, tree in zip(args.revs, trees):
                    results[rev].append(one_run(tree, urls, work / f"out-{n}-{tree.name}", args.get.split()))
                    print(f"round {n + 1}: {rev}: wall {results[rev][-1][0]:.1f} s, cpu {results[rev][-1][1]:.1f} s",
                          file=sys.stderr)
        finally:
            stop(server)
            for tree in trees:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
    print(f"| commit | wall s | CPU s (tree) | ok of {args.count} |\n|---|---|---|---|")
    for rev, runs in results.items():
        walls, cpus, oks = zip(*runs)
        print(f"| {rev} | {spread(list(walls), '.1f')} | {spread(list(cpus), '.1f')} | {spread(list(oks), '.0f')} |")
    median = {rev: [statistics.median(run[i] for run in runs) for i in range(2)] for rev, runs in results.items()}
    old, new = args.revs
    print(f"\n{new} / {old}: wall time {median[new][0] / median[old][0]:.2f}, CPU {median[new][1] / median[old][1]:.2f}")

if __name__ == "__main__":
    main()
