"""The library's keyword arguments for type checkers: ``**kwargs: Unpack[DownloadKeywords]``.

Written by ``python -m imgfetch.options.keywords`` from the declarations in definitions.py (the names,
and the types that keywords.annotation gives the signatures); do not edit: a test fails when it is stale.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Literal, Mapping, Sequence, TypedDict


class _SharedKeywords(TypedDict, total=False):
    """The keyword arguments fetch() and Downloader share."""

    max_time: float
    timeout: float
    deadline: float | None
    max_bytes: int | str
    retries: int
    backoff: float
    max_retry_after: float
    max_redirects: int
    user_agent: str
    headers: Mapping[str, str] | Sequence[str | tuple[str, str]]
    proxy: str | None
    ca_bundle: str | os.PathLike[str] | None
    insecure: bool
    verify: Literal['fast', 'full', 'none']
    formats: Sequence[str] | str
    max_pixels: int
    naming: str
    subdirs: int | None
    overwrite: bool
    resize: int | None
    resize_mode: Literal['no', 'keep_ratio', 'keep_ratio_largest', 'center_crop', 'border'] | None
    resize_only_if_bigger: bool
    encode_format: Literal['jpg', 'png', 'webp'] | None
    encode_quality: int
    min_image_size: int | None
    max_aspect_ratio: float | None
    disallowed_header_directives: Sequence[str] | str
    user_agent_token: str | None
    user_agent_url: str | None
    log_pids: bool


class FetchKeywords(_SharedKeywords, total=False):
    """fetch()'s keyword arguments."""

    progress: bool | None


class DownloaderKeywords(_SharedKeywords, total=False):
    """Downloader()'s keyword arguments."""

    workers: int | None
    threads: int
    start_method: Literal['fork', 'spawn', 'forkserver'] | None
    per_host: int | None
    rate: float | None
    executor: Literal['process', 'dask']
    scheduler: str | None
    retry_failed: Literal['all', 'transient', 'none']
    manifest: str | os.PathLike[str] | None
    errors: str | os.PathLike[str] | None
    storage_options: Mapping[str, Any] | Sequence[str | tuple[str, Any]]
    dedup: str | None
    url_key: str
    keep_columns: Sequence[str] | str
    caption_column: str | None
    initializer: Callable[..., Any] | None
    initargs: tuple[Any, ...]


class DownloadKeywords(DownloaderKeywords, total=False):
    """download()'s and iter_download()'s keyword arguments."""

    output_format: Literal['files', 'webdataset', 'parquet']
    shard_size: int
    input_format: Literal['txt', 'csv', 'tsv', 'jsonl', 'parquet'] | None
    url_column: str
    progress: bool | None
