"""``imgfetch serve``: the built-in server's settings (``imgfetch.server.ServerSettings``) served until Ctrl-C."""
from __future__ import annotations

import argparse
import contextlib
import errno
import sys
import threading
from typing import IO

from ..errors import ImgFetchError
from ..server.settings import ServerSettings
from . import ExitStatus
from .environment import Environment


def serve(settings: ServerSettings, out: IO[str] | None = None) -> ExitStatus:
    """Serve until Ctrl-C; every image is rendered first, so no client pays for it mid-benchmark."""
    from ..server import ImageServer

    server = ImageServer(settings)
    try:
        server.start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise ImgFetchError(f"{exc.strerror}; give another --port, or --port 0 for a free one") from None
    try:
        with contextlib.suppress(KeyboardInterrupt):
            for i in range(settings.count):
                server.image_bytes(i)
            print(f"serving {settings.count} images on {server.base_url} (list: {server.url('/urls.txt')}); "
                  "Ctrl-C stops", file=out or sys.stdout, flush=True)
            threading.Event().wait()
    finally:
        server.stop()
    return ExitStatus.OK


def serve_command(args: argparse.Namespace, env: Environment) -> ExitStatus:
    from ..options.arguments import given

    return serve(ServerSettings(**given(ServerSettings, args)), env.stdout)
