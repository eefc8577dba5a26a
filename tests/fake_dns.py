"""A resolver the tests control: names ending in ``.test`` never reach the network.

``install()`` puts ``getaddrinfo`` in place of ``socket.getaddrinfo`` in this process; as a pool's
``initializer`` it does so in every worker process. Every ``*.test`` name is 127.0.0.1, except:
``never-*.test`` never answers (for HANG_S, then a temporary failure), ``gone-*.test`` does not exist,
``again-*.test`` fails at once as a resolver does when it cannot answer now, and the names in ADDRESSES have the addresses listed there, in that order. The real resolver
answers every other name (``localhost``, IP addresses).
"""
from __future__ import annotations

import socket
import threading
from typing import Any

REAL = socket.getaddrinfo
HANG_S = 5.0  # how long a never-*.test lookup holds its resolver thread
LOOKED_UP: list[str] = []  # the *.test names asked for, in this process
ADDRESSES: dict[str, list[str]] = {}
_released = threading.Event()  # never set: a hanging lookup waits on it for HANG_S


def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> list:
    if not (isinstance(host, str) and host.endswith(".test")):
        return REAL(host, port, family, type, proto, flags)
    LOOKED_UP.append(host)
    if host.startswith("never-"):
        _released.wait(HANG_S)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    if host.startswith("gone-"):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    if host.startswith("again-"):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    return [info for address in ADDRESSES.get(host, ["127.0.0.1"])
            for info in REAL(address, port, socket.AF_INET, socket.SOCK_STREAM, proto, socket.AI_NUMERICHOST)]


def install() -> None:
    """Answer ``*.test`` names here (a pool initializer: module level, so every start method can run it)."""
    socket.getaddrinfo = getaddrinfo
