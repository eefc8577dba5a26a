"""Run the same worker function on a Dask cluster through its concurrent.futures interface."""
from __future__ import annotations

import logging
from concurrent.futures import Executor
from typing import Callable

from .errors import ImgFetchError
from .options import Options

log = logging.getLogger(__name__)
INSTALL_HINT = "--executor dask needs Dask: pip install 'imgfetch[dask]'"


def require_dask() -> None:
    """Fail early, before any download, when the extra is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ImgFetchError(INSTALL_HINT) from None


def start_dask(opts: Options) -> tuple[Executor, Callable[[], None]]:
    """(executor, close): join --scheduler, or start a LocalCluster of --workers processes."""
    require_dask()
    from distributed import Client, LocalCluster

    cluster = None
    try:
        if opts.scheduler:
            client = Client(opts.scheduler, timeout=30)
        else:
            # One Dask thread per process: each chunk already runs on --threads download threads.
            cluster = LocalCluster(n_workers=opts.workers, threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address="127.0.0.1:0")  # HTTP endpoints on loopback only
            client = Client(cluster)
    except OSError as exc:
        if cluster is not None:
            cluster.close()
        raise ImgFetchError(f"cannot reach the Dask scheduler {opts.scheduler}: {exc}") from None
    log.info("running on Dask: %s", client)

    def close() -> None:
        client.close()
        if cluster is not None:
            cluster.close()

    return client.get_executor(pure=False), close
