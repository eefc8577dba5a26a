"""The LocalCluster that --executor dask starts when no --scheduler is given (imports distributed).

Its worker processes are this run's, as the local pool's are, so the parent owns interruption
for them too: a Ctrl-C (or a SIGTERM) sent to the whole process group must not kill a task
that has saved an image before its record reaches the parent. They ignore both signals; the
run stops them through the markers (markers.py), closes them with the cluster, and kills them
on a second Ctrl-C. Were the parent killed, they end on their own once the scheduler, which
lives in the parent, is gone.
"""
from __future__ import annotations

import signal
import threading
from typing import Any

from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from ..errors import ImgFetchError
from ..options import Options

CONNECT_TIMEOUT_S = 30  # how long to try reaching --scheduler before giving up


class IgnoreStopSignals(WorkerPlugin):
    """Makes each worker process (and any Dask starts later) ignore SIGINT and SIGTERM."""

    name = "imgfetch-ignore-stop-signals"

    def setup(self, worker: Any) -> None:
        if threading.current_thread() is threading.main_thread():  # where Dask runs setup; signals need it
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)


def connect(opts: Options, threads: int | None = None) -> tuple[Client, LocalCluster | None]:
    """A client of --scheduler, or of a new LocalCluster of --workers processes x ``threads`` Dask threads
    (--threads unless given), on loopback only, whose workers ignore stop signals; and that cluster."""
    cluster = None
    try:
        if opts.scheduler:
            return Client(opts.scheduler, timeout=CONNECT_TIMEOUT_S), None
        cluster = LocalCluster(n_workers=opts.workers, threads_per_worker=threads or opts.threads, processes=True,
                               host="127.0.0.1", dashboard_address="127.0.0.1:0")
        client = Client(cluster)
        client.register_plugin(IgnoreStopSignals())
        return client, cluster
    except OSError as exc:
        if cluster is not None:
            cluster.close()
        raise ImgFetchError(f"cannot reach the Dask scheduler {opts.scheduler}: {exc}") from None


def local_worker_pids(cluster: Any) -> set[int]:
    """The PIDs of the cluster's worker processes now (each Nanny holds one)."""
    nannies = list(getattr(cluster, "workers", {}).values())
    return {pid for pid in (getattr(getattr(nanny, "process", None), "pid", None) for nanny in nannies) if pid}
