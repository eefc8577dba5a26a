"""requests' adapter as imgfetch uses it.

Its connections open within their connect timeout, DNS lookup included (``net.connect``), and
tell the watchdog which socket they read; its pools keep idle connections in one process-wide
line (``net.pools``); its HTTPS pools share one TLS context that resumes sessions (``net.tls``).
Each is hooked in where urllib3 and requests expect it: a pool's ``ConnectionCls`` and
``QueueCls``, a PoolManager's ``pool_classes_by_scheme``, a connection's ``_new_conn`` (urllib3's
own SOCKS connection overrides it the same way), and the adapter's
``build_connection_pool_key_attributes``.
"""
from __future__ import annotations

import socket
import sys
import threading
from functools import partial
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

from .connect import open_connection
from .pools import IdleConnections, IdleQueue
from .resolve import DNSTimeout
from .tls import SessionContext, tls_context
from .watchdog import Watchdog


def _new_socket(conn: HTTPConnection) -> socket.socket:
    """urllib3's HTTPConnection._new_conn, with the lookup and the connect inside the one connect timeout."""
    timeout = conn.timeout if isinstance(conn.timeout, (int, float)) else socket.getdefaulttimeout()
    dog = Watchdog.get()
    try:
        # _dns_host: urllib3's name for the host as given, keeping a trailing dot (which matters to DNS)
        sock = open_connection(conn._dns_host, conn.port, allowed_gai_family(), timeout,  # type: ignore[arg-type]
                               source_address=conn.source_address, socket_options=conn.socket_options,
                               cancelled=dog.fired)
    except (socket.gaierror, DNSTimeout) as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc  # type: ignore[arg-type]
    except TimeoutError as exc:
        raise ConnectTimeoutError(conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})"
                                  ) from exc
    except OSError as exc:
        raise NewConnectionError(conn, f"Failed to establish a new connection: {exc}") from exc
    sys.audit("http.client.connect", conn, conn.host, conn.port)
    dog.capture(sock)
    return sock


class WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _new_socket(self)

    def connect(self) -> None:
        Watchdog.get().attach(self)  # a reconnect of a dropped connection: this thread holds it
        super().connect()


class WatchedHTTPSConnection(WatchedHTTPConnection, HTTPSConnection):
    _answered = False  # whether this connection's TLS session has been offered to its context

    def connect(self) -> None:
        self._answered = False
        super().connect()

    def getresponse(self) -> Any:  # type: ignore[override]
        sock = self.sock  # a Connection: close answer takes the socket from the connection
        response = super().getresponse()
        if not self._answered:
            self._answered = True
            context = getattr(sock, "context", None)
            if isinstance(context, SessionContext):
                context.remember(sock)  # an answer has been read: a TLS 1.3 ticket has arrived with it
        return response


def pool_classes(line: IdleConnections) -> dict[str, type]:
    """A PoolManager's ``pool_classes_by_scheme``: pools of watched connections, idle ones kept in ``line``."""
    # staticmethod: a partial stored on a class becomes a method descriptor in a future Python (3.13 warns)
    queue_class = staticmethod(partial(IdleQueue, line))
    return {"http": type("WatchedHTTPPool", (HTTPConnectionPool,),
                         {"ConnectionCls": WatchedHTTPConnection, "QueueCls": queue_class}),
            "https": type("WatchedHTTPSPool", (HTTPSConnectionPool,),
                          {"ConnectionCls": WatchedHTTPSConnection, "QueueCls": queue_class})}


class WatchedAdapter(HTTPAdapter):
    """requests' adapter with imgfetch's connections (direct, or through an HTTP proxy).

    ``idle_budget`` idle connections over all hosts, at most ``per_host`` of them to one host.
    """

    def __init__(self, idle_budget: int, per_host: int) -> None:
        self.idle = IdleConnections(idle_budget)
        self._classes = pool_classes(self.idle)
        self._contexts: dict[bool | str, SessionContext] = {}
        self._contexts_lock = threading.Lock()
        super().__init__(pool_connections=idle_budget, pool_maxsize=per_host, max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        # A plain (not underscored) attribute, and the only way to choose the pool classes, since
        # requests builds its managers itself.
        self.poolmanager.pool_classes_by_scheme = dict(self._classes)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS pools have their own classes; socket timeouts still apply
            manager.pool_classes_by_scheme = dict(self._classes)
        return manager

    def build_connection_pool_key_attributes(self, request: Any, verify: Any, cert: Any = None) -> Any:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params["scheme"] == "https" and cert is None:
            pool_kwargs["ssl_context"] = self.tls_context(verify)
        return host_params, pool_kwargs

    def tls_context(self, verify: bool | str) -> SessionContext:
        """The one context of this adapter for requests' ``verify`` value (made on first use)."""
        with self._contexts_lock:
            context = self._contexts.get(verify)
            if context is None:
                context = self._contexts[verify] = tls_context(verify)
            return context
