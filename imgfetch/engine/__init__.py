"""Where work runs: runs, the Downloader, the local pool and Dask (the README's Architecture section maps its modules)."""
