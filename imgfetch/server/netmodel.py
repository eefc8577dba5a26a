"""Per-image latency and fault model for the loopback server ("look like the internet").

Everything is a pure function of ``(seed, image index)``: the same image gets
the same latency and the same fault in every run, every process and every
client tool, and a retry meets the same fault again (as a dead link does).
"""
from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import Optional, Union

MAX_LATENCY_S = 60.0        # cap on any latency, so a draw from the tail never stalls a test
MAX_SPREAD = 5.0            # log-normal sigma; 5 already spans 10 orders of magnitude
MAX_FAULT_HANG_S = 120.0    # longest a ``hang`` fault may stay silent

STATUS_FAULTS = ("403", "404", "410", "500", "503")
# Fixed order: it decides which kind a given (seed, i) falls into.
FAULT_KINDS = STATUS_FAULTS + ("hang", "drip", "reset", "html", "truncated")
PRESETS: dict[str, dict[str, float]] = {
    # about 10 % failures, roughly what a scraped image list meets
    "realistic": {"404": 0.03, "403": 0.01, "410": 0.005, "500": 0.015, "hang": 0.015,
                  "drip": 0.005, "reset": 0.01, "html": 0.01},
}
NO_FAULTS = ("", "none", "0")
_SUM_SLACK = 1e-9            # float rounding allowed when shares sum to exactly 1
_DIGEST_BYTES = 8            # a 64-bit hash is plenty for a uniform float
_UNIT = 2 ** (8 * _DIGEST_BYTES)
_STD_NORMAL = NormalDist()

FaultSpec = Union[None, str, Mapping[str, float]]


def _uniform(seed: int, i: int, salt: str) -> float:
    """A deterministic uniform number in (0, 1) for ``(seed, i, salt)``."""
    digest = hashlib.blake2b(f"imgfetch:{salt}:{seed}:{i}".encode(), digest_size=_DIGEST_BYTES).digest()
    return (int.from_bytes(digest, "big") + 0.5) / _UNIT


def _share(kind: str, value: object) -> float:
    """One share as a float in 0..1; a string may end with % (``3%`` = 0.03)."""
    text = str(value).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"faults: share for {kind!r} is not a number: {value!r}") from None
    if not 0.0 <= share <= 1.0:  # also rejects NaN
        raise ValueError(f"faults: share for {kind!r} must be between 0 and 1, got {value!r}")
    return share


def _text_pairs(text: str) -> list[tuple[str, str]]:
    """``(kind, share)`` pairs of ``"404=0.03,hang=1.5%"``; a lone preset name is an error here."""
    pairs: list[tuple[str, str]] = []
    for part in text.split(","):
        kind, sep, value = part.partition("=")
        if not sep:
            if part.strip().lower() in PRESETS:
                raise ValueError(f"faults: preset {part.strip()!r} cannot be mixed with kinds")
            raise ValueError(f"faults: expected KIND=SHARE or a preset ({', '.join(PRESETS)}), "
                             f"got {part.strip()!r}")
        pairs.append((kind.strip().lower(), value))
    return pairs


def _mix(pairs: list[tuple[str, object]]) -> dict[str, float]:
    """kind -> share of validated pairs (known kinds, each once, shares summing to at most 1)."""
    mix: dict[str, float] = {}
    for kind, value in pairs:
        if kind not in FAULT_KINDS:
            raise ValueError(f"faults: unknown kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
        if kind in mix:
            raise ValueError(f"faults: kind {kind!r} given twice")
        mix[kind] = _share(kind, value)
    total = math.fsum(mix.values())
    if total > 1.0 + _SUM_SLACK:
        raise ValueError(f"faults: shares sum to {total:g}, more than 1")
    return mix


def parse_faults(spec: FaultSpec) -> dict[str, float]:
    """Validate a fault mix: kind -> share, a preset name, or ``"404=0.03,hang=1.5%"``.

    Returns only kinds with a share > 0. Raises ValueError naming the bad part
    (unknown kind or preset, share not in 0..1, duplicate kind, sum > 1).
    """
    if spec is None:
        return {}
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() in NO_FAULTS:
            return {}
        if text.lower() in PRESETS:
            return dict(PRESETS[text.lower()])
        pairs: list[tuple[str, object]] = list(_text_pairs(text))
    elif isinstance(spec, Mapping):
        pairs = [(str(k).strip().lower(), v) for k, v in spec.items()]
    else:
        raise ValueError(f"faults: expected a mapping or a string, got {type(spec).__name__}")
    return {k: v for k, v in _mix(pairs).items() if v > 0}


class NetModel:
    """Deterministic per-image latency (log-normal) and fault (at most one) model.

    ``latency_s(i)`` is ``latency_ms`` when ``latency_spread`` is 0, else a draw from a log-normal with median
    ``latency_ms`` and sigma ``latency_spread``, capped at MAX_LATENCY_S. ``fault(i)`` is a kind from FAULT_KINDS
    or None; kind k is chosen for a share ``faults[k]`` of indexes. The values are taken as given: ServerSettings
    checks them against MAX_LATENCY_S and MAX_SPREAD.
    """

    def __init__(self, latency_ms: float = 0.0, latency_spread: float = 0.0,
                 faults: FaultSpec = None, seed: int = 0) -> None:
        self.latency_ms, self.latency_spread, self.seed = float(latency_ms), float(latency_spread), seed
        self.faults = parse_faults(faults)
        kinds = [kind for kind in FAULT_KINDS if kind in self.faults]  # the fixed kind order
        self._edges = list(zip(itertools.accumulate(self.faults[kind] for kind in kinds), kinds))  # cumulative upper edges

    def latency_s(self, i: int) -> float:
        """Seconds of latency for image ``i`` (any int; deterministic)."""
        median = self.latency_ms / 1000
        if self.latency_spread == 0 or median == 0:
            return min(median, MAX_LATENCY_S)
        z = _STD_NORMAL.inv_cdf(_uniform(self.seed, i, "latency"))
        return min(median * math.exp(self.latency_spread * z), MAX_LATENCY_S)

    def fault(self, i: int) -> Optional[str]:
        """The fault kind of image ``i``, or None (any int; deterministic)."""
        if not self._edges:
            return None
        u = _uniform(self.seed, i, "fault")
        return next((kind for edge, kind in self._edges if u < edge), None)

    def latency_text(self) -> str:
        """'log-normal latency, median 80 ms, sigma 1', or 'fixed latency 80 ms'."""
        if self.latency_spread:
            return f"log-normal latency, median {self.latency_ms:g} ms, sigma {self.latency_spread:g}"
        return f"fixed latency {self.latency_ms:g} ms"

    def describe(self) -> str:
        """One line for logs: latency and fault mix."""
        mix = ", ".join(f"{k} {v:.2%}" for k, v in self.faults.items()) or "none"
        return f"{self.latency_text()}; faults: {mix}"
