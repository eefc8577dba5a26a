"""An HTTPS server on loopback with the self-signed pair in tests/data, serving one image, for tests."""
from __future__ import annotations

import http.server
import ssl
import threading
from pathlib import Path

DATA = Path(__file__).parent / "data"


class TLSServer:
    """Serves ``body`` as a JPEG at any path, on 127.0.0.1 and an ephemeral port; ``base`` names it by
    ``host``. One connection per request (HTTP/1.0); ``resumed`` notes, per connection, whether its
    TLS session was resumed. Stops on leaving the ``with`` block."""

    def __init__(self, body: bytes, host: str = "127.0.0.1") -> None:
        resumed: list[bool] = []
        self.resumed = resumed

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                resumed.append(self.connection.session_reused)
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(DATA / "selfsigned.pem", DATA / "selfsigned.key")
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.base = f"https://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "TLSServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
