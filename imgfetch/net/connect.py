"""A TCP connection to a host within one connect timeout, DNS lookup included.

The name is looked up by ``net.resolve`` (cached, never waited on past the deadline). Its
addresses are then tried as RFC 8305 ("Happy Eyeballs") suggests: families interleaved, the
next address started when the previous one has not connected within STAGGER_S (or at once when
it fails), the first to connect winning. So a blackholed IPv6 address costs STAGGER_S, not a
whole --timeout per address, and the whole connect ends by the one deadline.
"""
from __future__ import annotations

import errno
import itertools
import os
import selectors
import socket
import time
from typing import Any, Callable, Sequence

from .resolve import AddrInfo, Resolver

STAGGER_S = 0.25      # start the next address when the previous one has not connected by then
MAX_ADDRESSES = 8     # addresses of one name tried at most
POLL_S = 0.05         # a connect in progress checks this often whether its download was cut
_IN_PROGRESS = (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN)
_Selector = getattr(selectors, "PollSelector", selectors.SelectSelector)  # poll needs no descriptor of its own

SocketOptions = Sequence[tuple[int, int, Any]]


def open_connection(host: str, port: int, family: int, timeout: float | None, *,
                    source_address: tuple[str, int] | None = None, socket_options: SocketOptions | None = None,
                    cancelled: Callable[[], bool] | None = None) -> socket.socket:
    """A connected socket (blocking, with ``timeout``), within ``timeout`` s of now in all.

    Raises socket.gaierror or resolve.DNSTimeout for the name, TimeoutError when nothing connected in
    time (or ``cancelled()`` turned true), else the last address's OSError.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    infos = Resolver.get().resolve(host.strip("[]"), port, family, deadline, cancelled)  # [::1] is ::1
    sock = _first_to_connect(interleave(infos)[:MAX_ADDRESSES], deadline, source_address, socket_options or (),
                             cancelled)
    sock.settimeout(timeout)
    return sock


def interleave(infos: list[AddrInfo]) -> list[AddrInfo]:
    """Addresses with the families alternating, the resolver's first family first (RFC 8305, section 4)."""
    if not infos:
        return []
    first = [info for info in infos if info[0] == infos[0][0]]
    other = [info for info in infos if info[0] != infos[0][0]]
    return [info for pair in itertools.zip_longest(first, other) for info in pair if info is not None]


def _first_to_connect(infos: list[AddrInfo], deadline: float | None, source_address: tuple[str, int] | None,
                      options: SocketOptions, cancelled: Callable[[], bool] | None) -> socket.socket:
    selector = _Selector()
    trying: list[socket.socket] = []
    error: OSError | None = None
    try:
        next_start = time.monotonic()
        while True:
            now = time.monotonic()
            if (deadline is not None and now >= deadline) or (cancelled is not None and cancelled()):
                raise TimeoutError("timed out")
            if infos and (now >= next_start or not trying):
                sock, error = _start(infos.pop(0), source_address, options, error)
                if sock is not None:
                    trying.append(sock)
                    selector.register(sock, selectors.EVENT_WRITE)
                next_start = now + STAGGER_S if sock is not None else now
                continue
            if not trying:
                raise error or OSError(errno.EHOSTUNREACH, "no address to connect to")
            wait = min(POLL_S, *([next_start - now] if infos else []), *([deadline - now] if deadline else []))
            winner, error = _settle(selector, trying, max(0.0, wait), error)
            if winner is not None:
                winner.setblocking(True)
                return winner
    finally:
        selector.close()
        for sock in trying:
            sock.close()


def _settle(selector: selectors.BaseSelector, trying: list[socket.socket], wait: float,
            error: OSError | None) -> tuple[socket.socket | None, OSError | None]:
    """Wait up to ``wait`` s for connects in progress: (the first connected, taken out of ``trying``; the latest
    error). A failed one is closed and taken out too."""
    for key, _events in selector.select(wait):
        sock: socket.socket = key.fileobj  # type: ignore[assignment]
        selector.unregister(sock)
        trying.remove(sock)
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code == 0:
            return sock, error
        error = OSError(code, os.strerror(code))  # OSError picks the subclass: ConnectionRefusedError, ...
        sock.close()
    return None, error


def _start(info: AddrInfo, source_address: tuple[str, int] | None, options: SocketOptions,
           error: OSError | None) -> tuple[socket.socket | None, OSError | None]:
    """Begin connecting to one address: (the socket, or None if it failed at once; the latest error)."""
    family, kind, proto, _name, address = info
    sock = socket.socket(family, kind, proto)
    try:
        for option in options:
            sock.setsockopt(*option)
        if source_address:
            sock.bind(source_address)
        sock.setblocking(False)
        code = sock.connect_ex(address)
        if code and code not in _IN_PROGRESS:
            raise OSError(code, os.strerror(code))
    except OSError as exc:
        sock.close()
        return None, exc
    return sock, error

