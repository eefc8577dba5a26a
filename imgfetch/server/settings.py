"""The built-in server's settings, declared once: ``ImageServer``'s keyword arguments, ``imgfetch serve``'s
options and the server options of ``imgfetch bench``, with one set of limits and help texts."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from ..errors import OptionError
from ..options.checks import number, whole
from ..options.spec import check_fields, option
from .netmodel import MAX_FAULT_HANG_S, MAX_LATENCY_S, MAX_SPREAD, FaultSpec, parse_faults
from .wire import MAX_STREAM_S

SERVER = "the built-in server"  # the --help section
MAX_PORT = 65535


def loopback_host(name: str, value: Any) -> str:
    """A loopback IP address (localhost is 127.0.0.1): the server never listens beyond this machine."""
    if value == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise OptionError(f"{name}: the server binds loopback IP addresses only, not {value!r}", name) from None
    if not ip.is_loopback:
        raise OptionError(f"{name}: refusing to bind non-loopback address {value!r}", name)
    return str(ip)


def fault_mix(name: str, value: Any) -> dict[str, float]:
    """kind -> share, from a mapping, a preset or ``404=0.03,hang=1.5%`` (netmodel.parse_faults)."""
    try:
        return parse_faults(value)
    except ValueError as exc:  # its message starts with the option's name
        raise OptionError(str(exc), name) from None


@dataclass(frozen=True)
class ServerSettings:
    """What the server serves and how it misbehaves; validated like Options (OptionError naming the setting)."""

    port: int = option(0, group=SERVER, check=whole(0, MAX_PORT), parse=int, metavar="PORT",
                       help="port; 0 picks a free one")
    count: int = option(100, group=SERVER, check=whole(1), parse=int, metavar="N", help="number of images")
    latency_ms: float = option(0.0, group=SERVER, check=number(at_least=0, at_most=MAX_LATENCY_S * 1000), parse=float,
                               metavar="MS", help="latency of every answer; with --latency-spread, the median of each "
                                                  "image's own latency")
    latency_spread: float = option(0.0, group=SERVER, check=number(at_least=0, at_most=MAX_SPREAD), parse=float,
                                   metavar="SIGMA",
                                   help="sigma of a log-normal latency per image around --latency-ms, fixed per image: "
                                        "1.0 puts p90 at 3.6 x and p99 at 10 x the median, as on the internet; 0 for "
                                        "a fixed latency")
    faults: FaultSpec = option(None, group=SERVER, check=fault_mix, metavar="SPEC", default_text="none",
                               help="persistent per-image faults on /img/: 'realistic' (~10% failures) or "
                                    "KIND=SHARE,... with kinds 403 404 410 500 503 hang drip reset html truncated, "
                                    "e.g. '404=0.03,500=0.02,hang=0.015'")
    hang_s: float = option(60.0, group=SERVER, check=number(at_least=0, at_most=MAX_FAULT_HANG_S), parse=float,
                           metavar="S", help="seconds a 'hang' fault holds the connection before closing it")
    seed: int = option(0, group=SERVER, parse=int, metavar="N", help="seed of the images, latencies and faults")
    # library only
    drip_interval_s: float = option(1.0, check=number(at_least=0, at_most=MAX_STREAM_S),
                                    help="seconds between the body's bytes in a 'drip' fault")
    host: str = option("127.0.0.1", check=loopback_host, help="the loopback address to listen on")

    def __post_init__(self) -> None:
        check_fields(self)
