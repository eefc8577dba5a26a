"""Every option of a download run, declared once: type, default, check, help text and CLI flag.

The CLI's ``imgfetch get`` options, the keyword arguments of ``fetch``/``download``/``iter_download``
and the README's option table are derived from :class:`Options`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import OptionError
from ..records import RECORD_FIELDS
from . import checks
from .checks import comma_list, one_of, optional, whole
from .spec import check_fields, option
from .values import (
    COLUMN_NAMING,
    ENCODE_FORMATS,
    EXECUTORS,
    INPUT_FORMATS,
    KNOWN_FORMATS,
    NAMINGS,
    OPT_OUT_DIRECTIVES,
    OUTPUT_FORMATS,
    PILLOW_MAX_PIXELS,
    RESIZE_MODES,
    RETRY_FAILED,
    SHAPING,
    START_METHODS,
    VERIFY_MODES,
    default_start_method,
    default_workers,
)


def _naming(name: str, value: Any) -> Any:
    if not value.startswith(COLUMN_NAMING) and value not in NAMINGS:
        raise OptionError(f"{name} must be url, hash, index or column:NAME, got {value!r}", name)
    return value


def _column_name(name: str, value: Any) -> Any:
    if not isinstance(value, str) or not value.strip():
        raise OptionError(f"{name} must be a column name, got {value!r}", name)
    return checks.columns(RECORD_FIELDS)(name, (value,))[0]


_POSITIVE = whole(1)
_SECONDS = checks.number(above=0)
_PATH_TYPE = "str | os.PathLike[str] | None"


@dataclass(frozen=True)
class Options:
    """Every knob of a run. Field names are the CLI's long options with underscores."""

    # pool
    workers: int = option(default_factory=default_workers, group="pool", check=_POSITIVE, metavar="N", parse=int,
                          per_url=False, default_text="2 x usable CPUs, at most 32",
                          help="worker processes")
    threads: int = option(64, group="pool", check=_POSITIVE, metavar="N", parse=int, per_url=False,
                          help="download threads per worker process; concurrency = workers x threads")
    start_method: str = option(default_factory=default_start_method, group="pool", check=one_of(START_METHODS),
                               choices=START_METHODS, per_url=False, default_text="forkserver on Linux, spawn elsewhere",
                               help="how worker processes start")
    per_host: int | None = option(None, group="pool", check=optional(_POSITIVE), metavar="N", parse=int, per_url=False,
                                  default_text="no limit",
                                  help="at most N downloads in flight per host (hostname and port), across all workers")
    rate: float | None = option(None, group="pool", metavar="R", parse=float, per_url=False, default_text="no limit",
                                check=optional(checks.number(above=0, words="a number of requests per second > 0")),
                                help="at most R downloads started per second per host; hosts are interleaved")
    executor: str = option("process", group="pool", check=one_of(EXECUTORS), choices=EXECUTORS, per_url=False,
                           help="process: a local process pool; dask: shards on a Dask cluster (pip install "
                                "'imgfetch[dask]'): each slice of --shard-size URLs is one Dask task that downloads on "
                                "--threads threads in a Dask worker process and writes its own outputs and manifest "
                                "part. Under Dask, OUT must be on a filesystem every Dask worker shares, or object storage "
                                "(s3://BUCKET/PREFIX, with a dataset format): each Dask worker uploads its own shards")
    scheduler: str | None = option(None, group="pool", metavar="tcp://HOST:PORT", per_url=False,
                                   default_text="start a LocalCluster of --workers processes x --threads threads on "
                                                "this machine",
                                   help="with --executor dask, join this scheduler")
    # network
    max_time: float = option(30.0, group="network", check=_SECONDS, metavar="S", parse=float,
                             help="seconds one URL may take in all: connecting, waiting for the answer, every attempt, "
                                  "redirect hops, backoff and Retry-After waits. A retry that cannot fit in what is "
                                  "left is not started, and a Retry-After longer than what is left fails the URL at once")
    timeout: float = option(10.0, group="network", check=_SECONDS, metavar="S", parse=float,
                            help="seconds to connect (the DNS lookup included, over all of a host's addresses), "
                                 "and to wait for each piece of data; a timed-out attempt is retried within --max-time")
    deadline: float | None = option(None, group="network", check=optional(_SECONDS), metavar="S", parse=float,
                                    default_text="no limit but --max-time",
                                    help="seconds one attempt may take, however slowly bytes drip; one that takes "
                                         "longer is retried within --max-time")
    max_bytes: int = option(50 * 1024**2, group="network", check=checks.size, metavar="SIZE", default_text="50M",
                            accepts="int | str",
                            help="largest image accepted, counted after decoding while the body streams in (not only from "
                                 "Content-Length); 500K, 10M, 1G")
    retries: int = option(3, group="network", check=whole(0), metavar="N", parse=int,
                          help="retries for connection errors, timeouts, 408, 429 and 5xx")
    retry_failed: str = option("transient", group="network", check=one_of(RETRY_FAILED), choices=RETRY_FAILED,
                               per_url=False,
                               help="URLs that failed in an earlier run (says the manifest) to fetch again: the "
                                    "transient failures (timeouts; connection, DNS, TLS, proxy and protocol errors; "
                                    "408, 429, 5xx; an empty body; disk errors; a crashed worker), all, or none. "
                                    "Permanent, so not transient: other 4xx (404, 410, ...), redirect loops, too large, "
                                    "not an image, corrupt, a refused format")
    backoff: float = option(0.5, group="network", check=checks.number(at_least=0), metavar="S", parse=float,
                            help="first retry waits about S seconds, doubling each time, with jitter")
    max_retry_after: float = option(60.0, group="network", check=checks.number(at_least=0), metavar="S", parse=float,
                                    help="longest Retry-After wait honoured for 429/503; a longer one fails the URL")
    max_redirects: int = option(10, group="network", check=whole(0), metavar="N", parse=int,
                                help="redirect hops followed, one by one; a hop to anything but http or https is refused")
    user_agent: str = option("imgfetch", group="network", help="User-Agent header")
    headers: tuple[tuple[str, str], ...] = option(
        (), group="network", check=checks.headers, flag="--header", metavar="'K: V'", action="append",
        accepts="Mapping[str, str] | Sequence[str | tuple[str, str]]",
        help="extra request header, repeatable; dropped on redirects to another host")
    proxy: str | None = option(None, group="network", check=checks.proxy, metavar="URL",
                               default_text="HTTP(S)_PROXY/NO_PROXY", help="proxy for all requests")
    ca_bundle: str | None = option(None, group="network", check=checks.existing_file, metavar="FILE",
                                   accepts=_PATH_TYPE,
                                   default_text="$REQUESTS_CA_BUNDLE or $CURL_CA_BUNDLE if set, else certifi's bundle",
                                   help="CA certificates to trust")
    insecure: bool = option(False, group="network", action="store_true", help="do not verify TLS certificates")
    # images
    verify: str = option("fast", group="images", check=one_of(VERIFY_MODES), choices=VERIFY_MODES,
                         help="fast: decode cheaply (JPEG at 1/8 scale, PNG CRCs); full: every pixel; "
                              "none: header only")
    formats: tuple[str, ...] = option(KNOWN_FORMATS, group="images", check=checks.formats(KNOWN_FORMATS),
                                      accepts="Sequence[str] | str",
                                      help="accepted formats (an allowlist), comma-separated; AVIF where Pillow can read it")
    max_pixels: int = option(PILLOW_MAX_PIXELS, group="images", check=_POSITIVE, metavar="N", parse=int,
                             help="images with more pixels are refused as decompression bombs. Above 178,956,970 "
                                  "(twice Pillow's own limit), WebP, TIFF and animated frames may still meet Pillow's "
                                  "limit in an in-process fetch(), as the Pillow version decides")
    # output
    naming: str = option("url", group="output", check=_naming, metavar="SCHEME",
                         help="file names: url (a safe URL basename + a short URL hash), hash (content sha256), index (line number), "
                              "column:NAME (a kept column)")
    subdirs: int | None = option(None, group="output", check=optional(_POSITIVE), metavar="N", parse=int,
                                 help="spread files over subfolders of at most N files, by line number")
    overwrite: bool = option(False, group="output", action="store_true", default_text="never",
                             help="replace existing files this folder's manifest does not own")
    manifest: str | None = option(None, group="output", check=checks.path, metavar="FILE", per_url=False,
                                  accepts=_PATH_TYPE, default_text="OUT/manifest.jsonl", help="manifest path")
    errors: str | None = option(None, group="output", check=checks.path, metavar="FILE", per_url=False,
                                accepts=_PATH_TYPE, help="write the failed URLs in full (credentials included) to FILE, mode 0600, "
                                     "ready to feed back in; FILE is replaced when the run ends, and may not be "
                                     "the URL list itself")
    storage_options: tuple[tuple[str, Any], ...] = option(
        (), group="output", check=checks.storage_options, flag="--storage-option", metavar="KEY=VALUE",
        action="append", per_url=False, accepts="Mapping[str, Any] | Sequence[str | tuple[str, Any]]",
        default_text="the environment's (AWS_ENDPOINT_URL, AWS_PROFILE, ~/.aws)",
        help="an fsspec storage option for an OUT that is a URL (s3://BUCKET/PREFIX, gs://, memory://, file://), "
             "repeatable: VALUE is read as JSON when it is JSON, a dotted KEY nests (client_kwargs.endpoint_url=URL); "
             "pip install 'imgfetch[s3]'")
    # resize, filters, dedup and opt-outs (images/transform.py, store/dedup.py, net/optout.py)
    resize: int | None = option(None, group=SHAPING, check=optional(_POSITIVE), metavar="N", parse=int,
                                default_text="keep each image's size",
                                help="resize to N pixels as --resize-mode says (a JPEG is decoded at the smallest "
                                     "scale that still gives N); the record keeps original_width and original_height")
    resize_mode: str | None = option(None, group=SHAPING, check=optional(one_of(RESIZE_MODES)), choices=RESIZE_MODES,
                                     default_text="keep_ratio",
                                     help="keep_ratio: the shorter side becomes N; keep_ratio_largest: the longer side; "
                                          "center_crop: keep_ratio, then the middle NxN; border: the longer side, then "
                                          "white (or, with alpha, transparent) borders to NxN; no: no resizing")
    resize_only_if_bigger: bool = option(False, group=SHAPING, action="store_true",
                                         help="never enlarge: leave alone an image whose side that --resize-mode "
                                              "measures is N or less")
    encode_format: str | None = option(None, group=SHAPING, check=optional(one_of(ENCODE_FORMATS)),
                                       choices=ENCODE_FORMATS,
                                       default_text="JPEG, PNG and WebP stay so; others become PNG if re-encoded",
                                       help="format of what is saved. An image is re-encoded only when it is resized, "
                                            "in another format, turned upright (EXIF), animated (its first frame is "
                                            "kept) or CMYK; otherwise its bytes are saved as fetched")
    encode_quality: int = option(95, group=SHAPING, check=whole(1, 100), metavar="Q", parse=int,
                                 help="JPEG and WebP quality of re-encoded images (PNG is lossless)")
    min_image_size: int | None = option(None, group=SHAPING, check=optional(_POSITIVE), metavar="N", parse=int,
                                        help="refuse images whose shorter side is under N pixels: failed, error_kind "
                                             "filtered, not retried by a re-run")
    max_aspect_ratio: float | None = option(None, group=SHAPING, metavar="R", parse=float,
                                            check=optional(checks.number(at_least=1)),
                                            help="refuse images whose longer side is over R times the shorter: "
                                                 "failed, error_kind filtered")
    dedup: str | None = option(None, group=SHAPING, check=checks.dedup, metavar="exact|phash:D", per_url=False,
                               help="keep the first of identical images (exact: the same sha256) or of near-identical "
                                    "ones (phash:D: perceptual hashes at most D bits apart; pip install "
                                    "'imgfetch[phash]'), across runs; the others are recorded as duplicate, with "
                                    "dup_of the first's key, and their files removed")
    disallowed_header_directives: tuple[str, ...] = option(
        OPT_OUT_DIRECTIVES, group=SHAPING, check=checks.directives, metavar="LIST", accepts="Sequence[str] | str",
        help="X-Robots-Tag directives that refuse an image, read before its body (for all robots, or addressed to "
             "--user-agent-token or the --user-agent product): failed, error_kind disallowed, not retried by a "
             "re-run. none: honour no opt-outs")
    user_agent_token: str | None = option(None, group=SHAPING, check=optional(checks.token), metavar="NAME",
                                          help="append '(compatible; NAME; +URL)' to --user-agent, so sites can "
                                               "address opt-outs to NAME")
    user_agent_url: str | None = option(None, group=SHAPING, check=optional(checks.http_url), metavar="URL",
                                        help="the +URL with --user-agent-token: a page about your crawler and how to "
                                             "reach you; without it, '(compatible; NAME)'")
    # dataset
    output_format: str = option("files", group="dataset", check=one_of(OUTPUT_FORMATS), choices=OUTPUT_FORMATS,
                                per_url=False,
                                help="files: one file per image; webdataset: tar shards NNNNN.tar of --shard-size images "
                                     "(KEY.jpg, KEY.json, KEY.txt), each with NNNNN.parquet (one row per URL, failures "
                                     "included) and NNNNN_stats.json; parquet: the same rows with the image bytes, as "
                                     "NNNNN.parquet. Both need pip install 'imgfetch[dataset]'")
    shard_size: int = option(10_000, group="dataset", check=_POSITIVE, metavar="N", parse=int, per_url=False,
                             help="images in a full shard; failed URLs take no room. Each worker process fills its own "
                                  "shard, so a run ends with up to one partial shard per worker process. With "
                                  "--executor dask (any output format), shard N is slice N of the list: N URLs, one "
                                  "Dask task; keep it the same between runs to resume")
    # input
    input_format: str | None = option(None, group="input", check=optional(one_of(INPUT_FORMATS)),
                                      choices=INPUT_FORMATS, per_url=False,
                                      default_text="from the extension; .gz accepted",
                                      help="list format; a folder of lists is read file by file in name order")
    url_column: str = option("url", group="input", metavar="NAME", per_url=False, help="CSV/TSV/parquet URL column")
    url_key: str = option("url", group="input", metavar="KEY", per_url=False, help="JSON Lines URL key")
    keep_columns: tuple[str, ...] = option((), group="input", check=checks.columns(RECORD_FIELDS), metavar="A,B",
                                           parse=comma_list, per_url=False, accepts="Sequence[str] | str",
                                           help="columns copied into each manifest record")
    caption_column: str | None = option(None, group="input", check=optional(_column_name),
                                        metavar="NAME", per_url=False,
                                        help="the list's caption column, kept like --keep-columns; in a dataset, "
                                             "KEY.txt and the caption of the json and parquet rows")
    # library only: the CLI sets these from -q, -v and whether stderr is a terminal
    progress: bool | None = option(None,
                                   help="draw a progress bar: True always, False never, None (the default) on a "
                                        "terminal or in Jupyter, never into a log file (the CLI: on a terminal, "
                                        "unless -q)")
    log_pids: bool = option(False, help="log '[Process ID]:<pid> Downloading <url>' as each URL starts (the CLI: -v)")
    initializer: Callable[..., Any] | None = option(None, check=checks.callable_or_none, per_url=False,
                                                    help="run in every worker process as it starts, as "
                                                         "ProcessPoolExecutor's initializer")
    initargs: tuple[Any, ...] = option((), check=checks.as_tuple, per_url=False, help="the initializer's arguments")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.naming.startswith(COLUMN_NAMING):
            column = self.naming[len(COLUMN_NAMING):]
            if column not in self.keep_columns:
                raise OptionError(f"naming column:{column} needs keep_columns {column}", "naming", "keep_columns")
        if self.scheduler and self.executor != "dask":
            raise OptionError("scheduler needs executor dask", "scheduler", "executor")
        self._check_shaping()
        self._check_dataset()
        self._check_dask()
        if self.insecure and self.ca_bundle:
            raise OptionError("insecure and ca_bundle contradict each other; give one", "insecure", "ca_bundle")

    def _check_shaping(self) -> None:
        if self.resize is None and self.resize_mode not in (None, "no"):
            raise OptionError(f"resize_mode {self.resize_mode} needs resize", "resize_mode", "resize")
        if self.resize is not None and self.resize_mode == "no":
            raise OptionError("resize and resize_mode no contradict each other; give one", "resize", "resize_mode")
        if self.resize_only_if_bigger and self.resize is None:
            raise OptionError("resize_only_if_bigger needs resize", "resize_only_if_bigger", "resize")
        if self.user_agent_url and not self.user_agent_token:
            raise OptionError("user_agent_url needs user_agent_token", "user_agent_url", "user_agent_token")

    def _check_dataset(self) -> None:
        """Options that a dataset's shards cannot honour are refused, never silently ignored."""
        if self.output_format == "files":
            return
        for name, default in (("dedup", None), ("naming", "url"), ("subdirs", None), ("overwrite", False)):
            if getattr(self, name) != default:
                raise OptionError(f"{name} applies to output_format files only (a shard's samples are named by "
                                  f"their shard and place, and a sample in a tar cannot be removed)", name,
                                  "output_format")

    def _check_dask(self) -> None:
        """What needs the one parent that sees every URL, which a run on Dask shards has not: refused."""
        if self.executor != "dask":
            return
        for name in ("dedup", "per_host", "rate", "errors", "manifest"):
            if getattr(self, name) is not None:
                raise OptionError(f"{name} needs executor process (on Dask, each shard runs on its own and writes "
                                  "its own manifest part)", name, "executor")

    @property
    def kept_columns(self) -> tuple[str, ...]:
        """The list's columns each record keeps: --keep-columns, then the caption column if not among them."""
        caption = self.caption_column
        return self.keep_columns + ((caption,) if caption and caption not in self.keep_columns else ())

    def replace(self, **changes: Any) -> "Options":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

