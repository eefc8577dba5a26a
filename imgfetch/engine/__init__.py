"""Where work runs. ``run`` is one run (list -> plan -> backend -> records -> manifest and progress);
``engine`` the loop that keeps the backend busy (``Engine``); ``pipeline`` one URL -> one record,
wherever it runs, ``shaping`` its image step (check, filter, resize, re-encode); ``pool`` the local
pool of worker processes and ``worker`` what runs inside them; ``politeness`` hosts interleaved and
the per-host limits; ``affinity`` which worker a host's URLs go to;
a run on Dask is shards: ``shard_run`` cuts the list, ``dask_shards`` hands the shards out and
collects their counts, ``shard_task`` runs one in a Dask worker process and ``shard_sinks`` writes
its outputs (``dask_local`` the LocalCluster, ``markers`` how a stop reaches the tasks);
``dask_pool`` is the Downloader's per-URL Dask backend; ``guard`` the check for scripts without a
``__main__`` guard.
"""
