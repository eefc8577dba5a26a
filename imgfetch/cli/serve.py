"""``imgfetch serve``: the built-in server's settings (``imgfetch.server.ServerSettings``) served until Ctrl-C."""
from __future__ import annotations

import argparse
import errno
import threading

from ..errors import ImgFetchError
from ..server.settings import ServerSettings


def serve(settings: ServerSettings) -> int:
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
        for i in range(settings.count):
            server.image_bytes(i)
        print(f"serving {settings.count} images on {server.base_url} (list: {server.url('/urls.txt')}); "
              "Ctrl-C stops", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def serve_command(args: argparse.Namespace) -> int:
    from ..options.arguments import given

    return serve(ServerSettings(**given(ServerSettings, args)))
