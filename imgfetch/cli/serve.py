"""``imgfetch serve``: its options, declared once, and the command."""
from __future__ import annotations

import argparse
import errno
import sys
import threading
from dataclasses import asdict, dataclass
from typing import IO

from ..errors import ImgFetchError
from ..options.checks import number, whole
from ..options.spec import check_fields, option
from . import ExitStatus
from .environment import Environment

_AT_LEAST_0 = number(at_least=0)
SERVER = "the built-in server"


@dataclass(frozen=True)
class ServeOptions:
    """What ``imgfetch serve`` serves (the keyword arguments of ``imgfetch.server.ImageServer``)."""

    port: int = option(0, group=SERVER, check=whole(0), parse=int, metavar="PORT", help="port; 0 picks a free one")
    count: int = option(100, group=SERVER, check=whole(1), parse=int, metavar="N", help="number of images")
    latency_ms: float = option(0.0, group=SERVER, check=_AT_LEAST_0, parse=float, metavar="MS",
                               help="added latency per response; the median per-image latency when --latency-spread "
                                    "is given")
    latency_spread: float = option(0.0, group=SERVER, check=_AT_LEAST_0, parse=float, metavar="SIGMA",
                                   default_text="0, fixed latency",
                                   help="sigma of a log-normal per-image latency around the median --latency-ms, "
                                        "fixed per image; 1.0 with 80 ms gives p99 ~ 0.8 s")
    faults: str | None = option(None, group=SERVER, metavar="SPEC", default_text="none",
                                help="persistent per-image faults on /img/: 'realistic' (~10% failures) or "
                                     "KIND=SHARE,... with kinds 403 404 410 500 503 hang drip reset html truncated, "
                                     "e.g. '404=0.03,500=0.02,hang=0.015'")
    hang_s: float = option(60.0, group=SERVER, check=_AT_LEAST_0, parse=float, metavar="S",
                           help="seconds a 'hang' fault holds the connection before closing it, at most 120")
    seed: int = option(0, group=SERVER, parse=int, metavar="N", help="seed of the images, latencies and faults")

    def __post_init__(self) -> None:
        check_fields(self)


def serve(options: ServeOptions, out: IO[str] | None = None) -> ExitStatus:
    """Serve until Ctrl-C; every image is rendered first, so no client pays for it mid-benchmark."""
    from ..server import ImageServer

    server = ImageServer(**asdict(options))
    try:
        server.start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise ImgFetchError(f"{exc.strerror}; give another --port, or --port 0 for a free one") from None
    try:
        for i in range(options.count):
            server.image_bytes(i)
        print(f"serving {options.count} images on {server.base_url} (list: {server.url('/urls.txt')}); "
              "Ctrl-C stops", file=out or sys.stdout, flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return ExitStatus.OK


def serve_command(args: argparse.Namespace, env: Environment) -> ExitStatus:
    from ..options.arguments import given

    return serve(ServeOptions(**given(ServeOptions, args)), env.stdout)
