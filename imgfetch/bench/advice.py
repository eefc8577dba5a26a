"""What a sweep means: which engine sizes the run cannot tell apart, whether it should have gone
larger, how ``imgfetch get``'s defaults compare, and what to pass to ``imgfetch get``.

Pure functions of the measurements, so they are tested with made-up timings.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .plan import BenchReport, Row

WITHIN = 0.05        # within 5 % of the best median: a tie, whatever the spreads
NOISE_LIMIT = 0.10   # overlapping min-max spreads make a tie only this close to the best
NOISY = 0.15         # the best's own runs spread wider than this: say the machine was noisy
LEVEL = 0.005        # closer than this to the best (it rounds to 0 %): "level with the best"
RERUN_REPEAT = 5     # the --repeat to suggest when the runs are too noisy to tell


@dataclass
class Advice:
    best: Row                    # the fastest median
    recommended: Row
    ties: list[Row]              # engine rows the run cannot tell from the best (the best first)
    defaults: Row | None         # get's defaults, as measured
    edges: list[str] = field(default_factory=list)  # "workers" and/or "threads": the best is the largest tried
    lines: list[str] = field(default_factory=list)  # the advice, to print in order
    recommendation: str = ""     # the last line: flags to pass to imgfetch get


def ties_with(row: Row, best: Row) -> bool:
    """Within WITHIN (5 %) of the best, or within NOISE_LIMIT (10 %) with overlapping min-max spreads."""
    if row is best or row.median >= (1 - WITHIN) * best.median:
        return True
    return row.median >= (1 - NOISE_LIMIT) * best.median and row.high >= best.low


def pct(fraction: float) -> str:
    """0.05 -> '5 %'."""
    return f"{fraction * 100:.0f} %"


def gap_text(row: Row, best: Row) -> str:
    """'3 % below the best', or 'level with the best' when under 0.5 %."""
    gap = below(row, best)
    return "level with the best" if gap < LEVEL else f"{pct(gap)} below the best"


def below(row: Row, best: Row) -> float:
    """How far below the best's median, as a fraction."""
    return 1 - row.median / best.median if best.median else 0.0


def advise(report: BenchReport) -> Advice:
    engine = report.engine
    best = max(engine, key=lambda r: (r.median, -r.concurrency))
    ties = [best] + [r for r in engine if r is not best and ties_with(r, best)]
    defaults = next((r for r in engine if r.is_default), None)
    # get's defaults when the run cannot tell them from the best: no flags to pass, and tuned for
    # latencies this run did not try. Not "the smallest size nearly as fast": a few download slots
    # keep up with a fast local server and fall behind on a slow host.
    recommended = defaults if defaults is not None and defaults in ties else best
    advice = Advice(best, recommended, ties, defaults)
    advice.lines += _teaching(report, best)
    advice.lines += _noise(report, best, ties)
    advice.lines += _edges(report, best, advice)
    if defaults is not None:
        advice.lines.append(_defaults_line(defaults, best))
    advice.recommendation = _recommendation(report, advice)
    return advice


def _teaching(report: BenchReport, best: Row) -> list[str]:
    """Why processes x threads with streaming beats the textbook pool, in this run's numbers."""
    seq = report.sequential
    parts = [f"{report.speedup(best):.0f}x the sequential loop"]
    for row in report.classic:
        if row.median:
            parts.append(f"{best.median / row.median:.1f}x {row.label}")
    lines = [f"imgfetch at its best ({best.short}, {best.median:.0f} images/s) is " + " and ".join(parts) + "."]
    if report.classic and seq.median:
        classic = report.classic[0]
        lines.append(f"Why: the loop has 1 download in flight and the classic pool {classic.workers} (one per "
                     f"process, each idle while it waits on the network); imgfetch keeps {best.concurrency} in "
                     f"flight ({best.workers} processes x {best.threads} threads) and streams each image back as "
                     f"it is saved.")
    return lines


def _noise(report: BenchReport, best: Row, ties: list[Row]) -> list[str]:
    lines = []
    if report.settings.repeat < 2:
        lines.append("With --repeat 1 there is no spread to judge the noise by; the ranking may not hold.")
    elif best.median and (best.high - best.low) / best.median > NOISY:
        lines.append(f"Noisy: the best's own runs ranged over {pct((best.high - best.low) / best.median)} of its "
                     f"median; the machine may be busy. Rerun with --repeat {RERUN_REPEAT} or a longer --seconds.")
    if len(ties) > 1:
        names = ", ".join(r.short for r in ties[:-1]) + f" and {ties[-1].short}"
        low = min(r.median for r in ties)
        lines.append(f"Within noise: {names} reached {low:.0f}-{best.median:.0f} images/s (within {pct(WITHIN)} of the "
                     f"fastest, or overlapping its min-max); this run cannot rank them, so none is crowned.")
    return lines


def _edges(report: BenchReport, best: Row, advice: Advice) -> list[str]:
    """'Try larger' when the best is the largest size tried along an axis."""
    series = [r for r in report.engine if r.start_method == best.start_method]
    lines, grow = [], {"workers": [best.workers], "threads": [best.threads]}
    for axis in ("workers", "threads"):
        other = "threads" if axis == "workers" else "workers"
        line = sorted((getattr(r, axis), r) for r in series if getattr(r, other) == getattr(best, other))
        sizes = [size for size, _ in line]
        if len(sizes) < 2 or getattr(best, axis) != sizes[-1]:
            continue
        advice.edges.append(axis)
        grow[axis].append(2 * sizes[-1])
        neighbour = line[-2][1]
        if ties_with(neighbour, best):
            lines.append(f"The best, {best.short}, is the most {axis} tried, but {neighbour.short} is within "
                         f"noise of it: the curve has flattened, so larger sizes are unlikely to help much.")
        else:
            lines.append(f"The best, {best.short}, is the most {axis} tried and {neighbour.short} was "
                         f"{pct(below(neighbour, best))} slower: the curve has not flattened.")
    if advice.edges:
        flags = " ".join(f"--{axis} {','.join(map(str, sizes))}" for axis, sizes in grow.items())
        lines.append(f"Try larger: imgfetch bench {flags}")
    return lines


def _defaults_line(defaults: Row, best: Row) -> str:
    name = f"get's defaults ({defaults.short}, {defaults.median:.0f} images/s)"
    if defaults is best:
        return f"{name} had the fastest median of the sweep."
    if below(defaults, best) <= WITHIN:
        return f"{name} are within {pct(WITHIN)} of the best ({gap_text(defaults, best)})."
    if ties_with(defaults, best):
        return f"{name} are within noise of the best ({gap_text(defaults, best)}; their min-max spreads overlap)."
    if defaults.high >= best.low:
        return (f"{name} are {gap_text(defaults, best)}, but their runs ({defaults.low:.0f}-{defaults.high:.0f}) "
                f"overlap the best's: rerun with --repeat {RERUN_REPEAT} to be sure.")
    return f"{name} are {gap_text(defaults, best)}."


def _recommendation(report: BenchReport, advice: Advice) -> str:
    rec, best = advice.recommended, advice.best
    flags = rec.flags
    methods = {r.start_method for r in report.engine}
    if len(methods) > 1 or (advice.defaults is not None and rec.start_method != advice.defaults.start_method):
        flags += f" --start-method {rec.start_method}"
    if rec is advice.defaults:
        where = "the best" if rec is best else f"{gap_text(rec, best)}, within noise"
        return (f"recommendation: imgfetch get {flags} ({rec.median:.0f} images/s, {where}). These are get's "
                f"defaults: plain `imgfetch get` does the same.")
    others = f"; {len(advice.ties) - 1} more within noise of it" if len(advice.ties) > 1 else ""
    note = f"; get's defaults were {gap_text(advice.defaults, best)}" if advice.defaults is not None else ""
    return f"recommendation: imgfetch get {flags} ({rec.median:.0f} images/s, the fastest median{others}{note})."
