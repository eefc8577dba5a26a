"""A real `dask scheduler` and `dask worker` processes on loopback, for the tests that run shards on Dask
(test_dask_shards.py, test_dask_s3.py): the ``cluster`` fixture is in conftest.py."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from conftest import wait_for

DASK_THREADS = 4  # each Dask worker process's --nthreads: shard tasks, not downloads


def dask_cmd(*args: str) -> list[str]:
    return [os.path.join(os.path.dirname(sys.executable), "dask"), *args]


def start_cluster(folder, workers: int = 2):
    """A scheduler and ``workers`` single-process Dask workers on loopback; (address, processes)."""
    info = folder / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    procs = [subprocess.Popen(dask_cmd("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                       "--scheduler-file", str(info)), **quiet)]
    try:
        deadline = time.monotonic() + 60
        while not info.exists() or not info.read_text().strip():
            assert time.monotonic() < deadline, "dask scheduler did not start"
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        for _ in range(workers):
            procs.append(subprocess.Popen(dask_cmd("worker", address, "--host", "127.0.0.1", "--nworkers", "1",
                                                   "--nthreads", str(DASK_THREADS), "--no-dashboard",
                                                   "--local-directory", str(folder)), **quiet))
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(workers, timeout=60)
    except BaseException:
        stop_cluster(procs)  # nothing started here outlives a failed start
        raise
    return address, procs


def stop_cluster(procs) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start_cli(args: list[str]) -> subprocess.Popen:
    """``python -m imgfetch ARGS`` in a session of its own (a signal to its group reaches only it), stderr read."""
    return subprocess.Popen([sys.executable, "-m", "imgfetch", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)



def kill_a_worker_mid_run(client, proc: subprocess.Popen, started) -> str:
    """Once ``started()``, SIGKILL a Dask worker that is downloading (kill_a_busy_worker), let the run end and
    return its stderr; the run's group is killed if it outlives this, and the nanny's replacement worker is
    waited for, for the next test."""
    try:
        wait_for(started)
        kill_a_busy_worker(client)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    client.wait_for_workers(2, timeout=60)
    return err


def kill_a_busy_worker(client, timeout: float = 30) -> int:
    """SIGKILL a Dask worker process that is downloading for a shard; its PID.

    Not simply the lowest PID, nor any worker the scheduler says holds a shard: when one worker holds every
    shard, or the other is still starting after an earlier test's kill, killing it would prove nothing. The
    kill comes 50 ms after a thread there is seen in ``fetch_task`` (a download), so its request has reached the server
    (which the tests make answer after 150 ms): the kill cuts work in flight, and the shard must be redone."""
    def downloading() -> bool:  # run in a Dask worker, so nested: cloudpickle sends it by value
        """Whether a thread here is fetching a URL for a shard (a worker restarted by an earlier kill may hold
        shards while it still imports, with nothing fetched yet)."""
        for frame in sys._current_frames().values():
            while frame is not None:
                if frame.f_code.co_name == "fetch_task":
                    return True
                frame = frame.f_back
        return False

    deadline = time.monotonic() + timeout
    while True:
        busy = [address for address, keys in client.processing().items() if keys]
        fetching = [address for address, yes in client.run(downloading, workers=busy).items() if yes] if busy else []
        if fetching:
            time.sleep(0.05)
            pid = client.run(os.getpid, workers=fetching[:1])[fetching[0]]
            os.kill(pid, signal.SIGKILL)
            return pid
        assert time.monotonic() < deadline, "no Dask worker is downloading for a shard"
        time.sleep(0.02)
