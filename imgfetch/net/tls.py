"""One TLS context per process (per Fetcher), which resumes sessions with hosts it has met.

requests would give urllib3 no context of its own: urllib3 then builds one per connection and
loads the whole CA bundle into it, a full handshake every time. ``SessionContext`` is made once,
with the CA bundle loaded once, and is handed to urllib3 as a pool's ``ssl_context`` (requests'
documented way, ``HTTPAdapter.build_connection_pool_key_attributes``). It remembers the session
of the first answer on each connection (by host name and port; a TLS 1.3 ticket arrives after
the handshake, so not before an answer has been read) and offers it when the next connection to
that host is wrapped: ``SSLContext.wrap_socket(session=...)``. A server that declines simply
makes a full handshake. It also shows the wrapped socket to the watchdog before the handshake,
so a server that stalls the handshake is cut at the deadline like any other read.
"""
from __future__ import annotations

import os
import socket
import ssl
import sys
import threading
from collections import OrderedDict
from typing import Any

import certifi

from .watchdog import Watchdog

SESSIONS_KEPT = 2048  # hosts whose TLS session a context remembers


class SessionContext(ssl.SSLContext):
    """An SSLContext that resumes TLS sessions per (host name, port)."""

    sessions: OrderedDict[tuple[str, int], ssl.SSLSession]

    def __new__(cls, protocol: int = ssl.PROTOCOL_TLS_CLIENT) -> SessionContext:
        return super().__new__(cls, protocol)

    def __init__(self, protocol: int = ssl.PROTOCOL_TLS_CLIENT) -> None:
        super().__init__()
        self.sessions = OrderedDict()
        self._sessions_lock = threading.Lock()
        self._loaded: set[tuple[Any, Any, Any]] = set()

    def wrap_socket(self, sock: socket.socket, server_side: bool = False,  # type: ignore[override]
                    do_handshake_on_connect: bool = True, suppress_ragged_eofs: bool = True,
                    server_hostname: str | None = None, session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
        if session is None and server_hostname and not server_side:
            session = self._session_for(server_hostname, sock)
        wrapped = super().wrap_socket(sock, server_side, False, suppress_ragged_eofs, server_hostname, session)
        if do_handshake_on_connect:
            Watchdog.get().capture(wrapped)
            try:
                wrapped.do_handshake()
            except BaseException:
                wrapped.close()
                raise
        return wrapped

    def load_verify_locations(self, cafile: Any = None, capath: Any = None, cadata: Any = None) -> None:
        """Load CA certificates once: urllib3 passes requests' bundle again for every new connection."""
        source = (cafile, capath, cadata)
        if source not in self._loaded:
            super().load_verify_locations(cafile, capath, cadata)
            self._loaded.add(source)

    def remember(self, sock: Any) -> None:
        """Keep ``sock``'s session for the next connection to its host (call it once an answer has been read)."""
        if not isinstance(sock, ssl.SSLSocket) or sock.context is not self or not sock.server_hostname:
            return
        try:
            session, port = sock.session, sock.getpeername()[1]
        except (OSError, ValueError):
            return
        if session is None or not (session.has_ticket or session.id):
            return
        with self._sessions_lock:
            self.sessions[(sock.server_hostname, port)] = session
            self.sessions.move_to_end((sock.server_hostname, port))
            while len(self.sessions) > SESSIONS_KEPT:
                self.sessions.popitem(last=False)

    def _session_for(self, host: str, sock: socket.socket) -> ssl.SSLSession | None:
        try:
            port = sock.getpeername()[1]
        except (OSError, IndexError):
            return None
        with self._sessions_lock:
            return self.sessions.get((host, port))


def tls_context(verify: bool | str) -> SessionContext:
    """A client context as urllib3's create_urllib3_context makes it, but with session tickets: TLS 1.2
    or later, host names checked, against the CAs ``verify`` names (requests' meaning: True for
    certifi's bundle, a CA file or folder, or False for no check)."""
    context = SessionContext()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION  # not OP_NO_TICKET (urllib3 sets it): tickets are what resumes TLS 1.2
    if sys.version_info >= (3, 13):  # as ssl.create_default_context() and urllib3 do there
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN | ssl.VERIFY_X509_STRICT
    context.post_handshake_auth = True
    context.hostname_checks_common_name = False
    keylog = os.path.expandvars(os.environ.get("SSLKEYLOGFILE", ""))
    if keylog:
        context.keylog_filename = keylog
    if verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if verify is True:
        verify = certifi.where()  # what requests trusts by default
    if os.path.isdir(verify):
        context.load_verify_locations(capath=verify)
    else:
        context.load_verify_locations(cafile=verify)
    return context
