"""The run summary: counts by status, bytes, time, and the failure reasons grouped for people."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from ..records import FAILED, INVALID, OK, STATUSES, ErrorKind, FetchResult, permanent_failure

MAX_REASONS = 1000  # distinct reasons kept; the rest are counted as "other reasons"
OTHER = "other reasons"
TOP_REASONS = 5  # failure reasons shown by default, commonest first
DNS_SHARE = 0.05  # above this share of the URLs fetched failing in DNS, the summary points at the resolver
_MB = 1e6  # decimal megabytes, as human_bytes counts
# Parts of a message that differ from URL to URL and would split one reason into many.
_VARYING = (
    (re.compile(r"\b\d[\d,]*(?= (?:bytes|characters)\b)"), "N"),
    (re.compile(r"\b\d+x\d+(?= pixels\b)"), "WxH"),
    (re.compile(r"\(\d+ bytes not processed\)"), "(N bytes not processed)"),
    # whether the retries or the --max-time budget ran out first is the same failure to a person
    (re.compile(r"; gave up after \d+ attempts?: no time left in --max-time [\d.]+ s$"), ""),
    (re.compile(r"^DNS lookup of \S+ timed out after [\d.]+ s"), "DNS lookup timed out"),
)


def counted(n: int, noun: str, plural: str = "s") -> str:
    """'1 host', '4 hosts', '2 processes'."""
    return f"{n} {noun}{plural if n != 1 else ''}"


def failure_reason(status: str, error: str | None) -> str:
    """A failed or invalid record's error, with per-URL numbers taken out so that like groups with like."""
    text = error or "no reason given"
    for pattern, replacement in _VARYING:
        text = pattern.sub(replacement, text)
    return f"invalid: {text}" if status == INVALID else text


@dataclass
class Summary:
    """Counts for the end of a run (and the progress bar's postfix, which shows the same numbers).

    ``counts`` has every record by status; ``skipped`` counts, by status, those this run did not fetch
    (ok: done by an earlier run; failed: a failure not retried); ``failures`` counts failed records by
    (error_kind, http_status), which is what says whether a re-run retries them.
    """

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    skipped: Counter[str] = field(default_factory=Counter)
    failures: Counter[tuple[str | None, int | None]] = field(default_factory=Counter)
    bytes: int = 0
    seconds: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)
    dns_failed: int = 0  # URLs this run fetched that failed in DNS

    def add(self, result: FetchResult) -> None:
        self.counts[result.status] = self.counts.get(result.status, 0) + 1
        if result.skipped:
            self.skipped[result.status] += 1
        elif result.status == OK and result.bytes:
            self.bytes += result.bytes
        if result.status == FAILED:
            self.failures[result.error_kind, result.http_status] += 1
            if result.error_kind == ErrorKind.DNS and not result.skipped:
                self.dns_failed += 1
        if result.status in (FAILED, INVALID):
            reason = failure_reason(result.status, result.error)
            if reason not in self.reasons and len(self.reasons) >= MAX_REASONS:
                reason = OTHER
            self.reasons[reason] += 1

    def merge(self, shard: dict, *, skipped: bool = False) -> None:
        """Add a shard's counts (``as_dict``'s form, from a sharded run's task); ``skipped``: a shard done by
        an earlier run, whose every record counts as skipped."""
        for status, n in shard.get("counts", {}).items():
            self.counts[status] = self.counts.get(status, 0) + n
            if skipped:
                self.skipped[status] += n
        if not skipped:
            self.skipped.update(shard.get("skipped", {}))
            self.bytes += shard.get("bytes", 0)
            self.dns_failed += shard.get("dns_failed", 0)
        self.failures.update({(kind, status): n for kind, status, n in shard.get("failures", [])})
        for reason, n in shard.get("reasons", {}).items():
            self.reasons[reason if reason in self.reasons or len(self.reasons) < MAX_REASONS else OTHER] += n

    def as_dict(self, reasons: int = MAX_REASONS) -> dict:
        """The counts as plain JSON data (at most ``reasons`` failure reasons, the commonest): what ``merge`` takes."""
        return {"counts": {k: v for k, v in self.counts.items() if v}, "skipped": dict(self.skipped),
                "failures": [[kind, status, n] for (kind, status), n in self.failures.items()],
                "reasons": dict(self.reasons.most_common(reasons)), "bytes": self.bytes, "dns_failed": self.dns_failed}

    @property
    def total(self) -> int:
        """Records so far: one per input line."""
        return sum(self.counts.values())

    @property
    def all_ok(self) -> bool:
        return not (self.counts[FAILED] or self.counts[INVALID])

    def failure_split(self) -> tuple[int, int]:
        """The failed URLs as (transient, permanent): what --retry-failed transient fetches again, and not."""
        permanent = sum(n for (kind, status), n in self.failures.items() if permanent_failure(kind, status))
        return self.counts[FAILED] - permanent, permanent

    def count_text(self, status: str, *, short: bool = False) -> str:
        """'ok 300 (275 from earlier runs)', 'failed 25 (21 not retried)': a status's count, and how many of
        those records this run did not fetch; short, for the bar: 'ok=300 (275 earlier)'."""
        text = f"{status}{'=' if short else ' '}{self.counts[status]}"
        skipped = self.skipped[status]
        if skipped:
            apart = "not retried" if status == FAILED else "earlier" if short else "from earlier runs"
            text += f" ({skipped} {apart})"
        return text

    def line(self) -> str:
        """'ok 300 (275 from earlier runs), failed 25 (21 not retried), invalid 0, duplicate 0; 0.3 MB in ...'."""
        fetched = self.counts[OK] - self.skipped[OK]
        rate = fetched / self.seconds if self.seconds > 0 else 0.0
        counts = ", ".join(self.count_text(status) for status in STATUSES)
        return f"{counts}; {self.bytes / _MB:.1f} MB in {self.seconds:.1f} s ({rate:.1f} images/s)"

    def shown_counts(self, *, short: bool = False) -> list[str]:
        """count_text of ok and of every other status with records (zeros left out)."""
        return [self.count_text(status, short=short) for status in STATUSES if self.counts[status] or status == OK]

    def postfix(self) -> str:
        """The progress bar's counts: the same words as line(), zeros left out."""
        return " ".join(self.shown_counts(short=True)) + f" {self.bytes / _MB:.1f}MB"

    def top_reasons(self, n: int = TOP_REASONS) -> list[tuple[int, str]]:
        """The n commonest failure reasons, commonest first, as (count, reason)."""
        ranked = sorted(self.reasons.items(), key=lambda item: (-item[1], item[0] == OTHER, item[0]))
        return [(count, reason) for reason, count in ranked[:n]]

    def reason_lines(self, n: int = TOP_REASONS) -> list[str]:
        """'  27 × HTTP 404 Not Found' lines, and one for the reasons left out."""
        top = self.top_reasons(n)
        if not top:
            return []
        width = len(f"{top[0][0]:,}")
        lines = [f"  {count:>{width},} × {reason}" for count, reason in top]
        rest = len(self.reasons) - len(top)
        if rest > 0:
            left = sum(self.reasons.values()) - sum(count for count, _ in top)
            lines.append(f"  {'':>{width}}   and {rest:,} more reason{'s' if rest > 1 else ''} "
                         f"({left:,} URL{'s' if left > 1 else ''}); the manifest has each one")
        return lines

    def dns_advice(self) -> str | None:
        """What to do when more than DNS_SHARE of the URLs fetched failed to look up their host; else None."""
        fetched = self.counts[OK] + self.counts[FAILED] - self.skipped[OK] - self.skipped[FAILED]
        if not self.dns_failed or self.dns_failed <= DNS_SHARE * fetched:
            return None
        return (f"DNS: {self.dns_failed:,} of {fetched:,} URLs ({self.dns_failed / fetched:.0%}) failed to look up "
                "their host, which usually means the resolver is struggling:\n"
                "  a local caching resolver (systemd-resolved, dnsmasq, unbound) or fewer --threads helps")

    def report(self, n: int = TOP_REASONS) -> str:
        """The counts line, then the commonest failure reasons, and the resolver advice if DNS failed often."""
        lines = [self.line()]
        if self.reasons:
            lines += ["failures:", *self.reason_lines(n)]
        advice = self.dns_advice()
        if advice:
            lines.append(advice)
        return "\n".join(lines)
