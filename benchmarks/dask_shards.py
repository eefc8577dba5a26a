"""imgfetch on a real Dask cluster on loopback, as shards, side by side with a local `imgfetch get` (issue 21).

The list and the server are realistic.py's lognormal scenario: nginx serves a corpus of images, each URL
answered after its own log-normal delay (median 80 ms, sigma 1, cap 5 s). A `dask scheduler` and one
`dask worker --nworkers 2 --nthreads 64` run on 127.0.0.1 for the whole benchmark (warmed up by one small
run, as a long-lived cluster is); each round runs, interleaved:

- local: imgfetch get LIST -o OUT --output-format webdataset --shard-size S --workers 2 --threads T
- dask:  the same with --executor dask --scheduler ADDR (2 Dask worker processes x --threads T)

Measured per run: wall time; the imgfetch process's CPU (wait4: the process and the children it waited for;
for dask, that is the client alone; for local, not the fork server's workers); the client's fixed cost (a
re-run of 50 URLs that are all done: start-up, imports, connecting); the scheduler's and the Dask workers' CPU (from /proc,
before and after); images in the tars written (read back with tarfile). Figures are medians of --rounds.

With --s3, a moto_server on loopback serves a bucket, and the dask run writes its shards to
s3://BUCKET/dask-N (the Dask workers upload them; the client carries no bytes), read back from the bucket
to count the images; the local run still writes a local folder. The issue's target is --s3.

    python benchmarks/dask_shards.py --count 4000 --rounds 3
    python benchmarks/dask_shards.py --s3 --count 20000 --rounds 3
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib
from benchlib import PY
from objstore import start_moto
from scenarios import check_nginx, ensure_corpus, lognormal, start_nginx
from vs_img2dataset import images_in

DASK = os.path.join(os.path.dirname(PY), "dask")
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    """utime + stime of one process, from /proc (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def tree_cpu_s(root: int) -> float:
    """utime + stime of a process and all its descendants now, from /proc (the Dask workers under `dask worker`)."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                parents[int(name)] = int(Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, changed = {root}, True
    while changed:
        grown = tree | {pid for pid, parent in parents.items() if parent in tree}
        changed, tree = grown != tree, grown
    return sum(proc_cpu_s(pid) for pid in tree)


def start_cluster(work: Path, nworkers: int, nthreads: int) -> tuple[str, subprocess.Popen, subprocess.Popen]:
    info = work / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    logs = open(work / "dask.log", "wb")  # noqa: SIM115 - lives as long as the cluster
    scheduler = subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                  "--scheduler-file", str(info)], stdout=logs, stderr=logs, start_new_session=True,
                                 env=env)
    workers = None
    try:
        deadline = time.monotonic() + 60
        while not info.exists() or not info.read_text().strip():
            if time.monotonic() > deadline:
                raise RuntimeError("dask scheduler did not start; see " + str(work / "dask.log"))
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        workers = subprocess.Popen([DASK, "worker", address, "--host", "127.0.0.1", "--nworkers", str(nworkers),
                                    "--nthreads", str(nthreads), "--no-dashboard", "--local-directory", str(work)],
                                   stdout=logs, stderr=logs, start_new_session=True, env=env)
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(nworkers, timeout=60)
    except BaseException:
        stop_cluster(workers, scheduler)
        raise
    return address, scheduler, workers


def stop_cluster(*procs: subprocess.Popen | None) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def run_one(argv: list[str], timeout: float) -> dict:
    """Run argv; wall time and the CPU of the process (and of what it waited for), from wait4."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.01)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    return {"wall_s": time.perf_counter() - started, "cpu_s": usage.ru_utime + usage.ru_stime,
            "returncode": proc.returncode, "stderr": err[-500:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="local --workers, and Dask worker processes")
    parser.add_argument("--threads", type=int, default=64, help="--threads for both (download threads per process)")
    parser.add_argument("--nthreads", type=int, default=64, help="dask worker --nthreads")
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--timeout", type=int, default=10)
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--corpus-size", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--run-timeout", type=float, default=600.0)
    parser.add_argument("--idle-probe", type=float, default=5.0, help="seconds to measure the idle scheduler's CPU")
    parser.add_argument("--s3", action="store_true", help="dask writes to s3:// on a moto_server on loopback")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"machine: {benchlib.machine_info()}\nload: {os.getloadavg()}", flush=True)
    corpus = ensure_corpus(args.corpus_size, 0)
    work = Path(tempfile.mkdtemp(prefix="imgfetch-dask-shards-"))
    work.chmod(0o755)
    nginx = scheduler = workers = moto = None
    runs: list[dict] = []
    fixed: dict = {"cpu_s": float("nan")}
    idle_per_s = float("nan")
    try:
        nginx, base = start_nginx(corpus, work / "nginx")
        check_nginx(base, corpus)
        urls = work / "urls.txt"
        urls.write_text("".join(u + "\n" for u in lognormal(base, args.count, args.corpus_size, args.seed).urls))
        bucket = None
        if args.s3:  # before the cluster starts: the Dask workers take the endpoint and credentials from it
            moto, bucket = start_bucket()
        address, scheduler, workers = start_cluster(work, args.workers, args.nthreads)
        common = ["--output-format", "webdataset", "--shard-size", str(args.shard_size), "--threads", str(args.threads),
                  "--timeout", str(args.timeout), "--retries", str(args.retries), "-q"]
        tools = {"local": ["--workers", str(args.workers)], "dask": ["--executor", "dask", "--scheduler", address]}
        warm = work / "warm.txt"
        warm.write_text("".join(urls.read_text().splitlines(keepends=True)[:50]))
        warm_out = f"s3://{bucket}/warm" if bucket else str(work / "warm")
        run_one([PY, "-m", "imgfetch", "get", str(warm), "-o", warm_out, *common, *tools["dask"]], 120)
        fixed = run_one([PY, "-m", "imgfetch", "get", str(warm), "-o", warm_out, *common, *tools["dask"]], 120)
        print(f"dask client, a re-run of 50 URLs with nothing to do (start-up, imports, connecting): "
              f"{fixed['cpu_s']:.3f} s CPU", flush=True)
        idle_from, idle_at = proc_cpu_s(scheduler.pid), time.perf_counter()
        time.sleep(args.idle_probe)  # the scheduler's own cost with its workers connected and nothing to do
        idle_per_s = (proc_cpu_s(scheduler.pid) - idle_from) / (time.perf_counter() - idle_at)
        print(f"scheduler CPU while idle: {1000 * idle_per_s:.1f} ms per second", flush=True)
        for round_ in range(args.rounds):
            for tool, extra in tools.items():
                out = work / f"{tool}-{round_}"
                target = f"s3://{bucket}/{tool}-{round_}" if bucket and tool == "dask" else str(out)
                before = (proc_cpu_s(scheduler.pid), tree_cpu_s(workers.pid))
                run = run_one([PY, "-m", "imgfetch", "get", str(urls), "-o", target, *common, *extra],
                              args.run_timeout)
                if target != str(out):  # the shards are in the bucket: fetch them back to count what reads
                    images = bucket_images(target, out)
                else:
                    images = images_in(out)
                run.update(tool=tool, round=round_, images=images, output=target,
                           scheduler_cpu_s=proc_cpu_s(scheduler.pid) - before[0],
                           dask_workers_cpu_s=tree_cpu_s(workers.pid) - before[1],
                           shards=-(-args.count // args.shard_size))
                runs.append(run)
                print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in run.items()
                                  if k != "stderr" or run["returncode"] not in (0, 1)}), flush=True)
                shutil.rmtree(out, ignore_errors=True)
    finally:
        stop_cluster(workers, scheduler)
        benchlib.stop(nginx)
        if moto is not None:
            moto.stdin.close()
            moto.wait(10)
    summary = summarize(runs, args.count, fixed["cpu_s"], idle_per_s)
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs,
                                         "summary": summary}, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return 0


def start_bucket() -> tuple[subprocess.Popen, str]:
    """A moto_server on loopback with one bucket; this process's environment (and so the cluster's, started
    after it, and every imgfetch run's) points at it."""
    moto, endpoint = start_moto()
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    import fsspec

    fsspec.filesystem("s3", skip_instance_cache=True).mkdir("imgfetch-bench")
    return moto, "imgfetch-bench"


def bucket_images(url: str, local: Path) -> int:
    """Download the shards under url to local, count the images in its tars, then empty both."""
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    prefix = url.removeprefix("s3://")
    fs.get(prefix + "/", str(local) + "/", recursive=True)
    images = images_in(local)
    fs.rm(prefix, recursive=True)
    return images


def summarize(runs: list[dict], count: int, fixed_cpu_s: float, idle_per_s: float) -> dict:
    med = {tool: {key: statistics.median(r[key] for r in runs if r["tool"] == tool)
                  for key in ("wall_s", "cpu_s", "scheduler_cpu_s", "dask_workers_cpu_s", "images")}
           for tool in ("local", "dask")}
    dask, local = med["dask"], med["local"]
    shards = runs[0]["shards"] if runs else 1
    busy = dask["scheduler_cpu_s"] - idle_per_s * dask["wall_s"]  # beyond what it spends idle in as long
    return {"median": med, "dask_over_local_wall": round(dask["wall_s"] / local["wall_s"], 3),
            "dask_client_cpu_ms_per_image": round(1000 * dask["cpu_s"] / count, 4),
            "scheduler_cpu_ms_per_image": round(1000 * dask["scheduler_cpu_s"] / count, 4),
            "scheduler_cpu_ms_per_shard": round(1000 * dask["scheduler_cpu_s"] / shards, 2),
            "scheduler_idle_cpu_ms_per_s": round(1000 * idle_per_s, 2),
            "scheduler_cpu_ms_per_shard_beyond_idle": round(1000 * busy / shards, 2),
            "client_cpu_ms_per_shard": round(1000 * dask["cpu_s"] / shards, 2),
            "client_fixed_cpu_s": round(fixed_cpu_s, 3),
            "client_cpu_ms_per_image_beyond_fixed": round(1000 * (dask["cpu_s"] - fixed_cpu_s) / count, 4),
            "dask_workers_cpu_ms_per_image": round(1000 * dask["dask_workers_cpu_s"] / count, 4)}


if __name__ == "__main__":
    raise SystemExit(main())
