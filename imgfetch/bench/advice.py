"""What a sweep means, decided once: which engine sizes the run cannot tell apart, whether one is
crowned, whether the curve is still rising at the largest size tried, and what to pass to
``imgfetch get``.

``judge`` makes that one decision, a :class:`Verdict`; every message (``advise``) and every row
marker (``Verdict.marks``) is rendered from it, so no two of them can disagree. Pure functions of
the measurements, so they are tested with made-up timings.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..report.summary import counted
from .plan import BenchReport, Row

WITHIN = 0.05        # within 5 % of the best median: a tie, whatever the spreads
NOISE_LIMIT = 0.10   # overlapping min-max spreads make a tie only this close to the best
NOISY = 0.15         # the best's own runs spread wider than this: say the machine was noisy
LEVEL = 0.005        # closer than this to the best (it rounds to 0 %): "level with the best"
RERUN_REPEAT = 5     # the --repeat to suggest when the runs are too noisy to tell
AXES = ("workers", "threads")


@dataclass(frozen=True)
class Edge:
    """The best is the largest size tried along ``axis`` (the other axis held at the best's)."""

    axis: str
    neighbour: Row       # the next-smaller size along the axis
    rival: Row | None    # a row with fewer of ``axis`` within noise of the best; None: the curve is still rising

    @property
    def rising(self) -> bool:
        return self.rival is None


@dataclass(frozen=True)
class Verdict:
    """The one reading of a sweep that the advice, the table's notes, the JSON and the chart show."""

    best: Row                  # the highest median
    ties: tuple[Row, ...]      # engine rows the run cannot tell from the best (the best first)
    defaults: Row | None       # get's defaults, as measured
    edges: tuple[Edge, ...]    # the axes along which the best is the largest size tried

    @property
    def crowned(self) -> bool:
        """One row is fastest beyond noise of every other."""
        return len(self.ties) == 1

    @property
    def pick(self) -> Row:
        """What to pass to ``imgfetch get``: get's defaults when the run cannot tell them from the best."""
        return self.defaults if self.defaults is not None and self.tied(self.defaults) else self.best

    def tied(self, row: Row) -> bool:
        """Among the rows this run cannot tell from the best (the best included)."""
        return any(row is tie for tie in self.ties)

    @property
    def rising(self) -> list[Edge]:
        return [edge for edge in self.edges if edge.rising]

    def marks(self, row: Row) -> list[str]:
        """The table's notes for an engine row: fastest / tied, defaults, recommended."""
        words = []
        if self.tied(row):
            words.append("fastest" if self.crowned else "tied")
        if row.is_default:
            words.append("defaults")
        if self.crowned and row is self.pick:
            words.append("recommended")
        return words


@dataclass
class Advice:
    verdict: Verdict
    lines: list[str] = field(default_factory=list)  # the advice, to print in order
    recommendation: str = ""     # the last line: flags to pass to imgfetch get

    @property
    def best(self) -> Row:
        return self.verdict.best

    @property
    def recommended(self) -> Row:
        return self.verdict.pick


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


def judge(report: BenchReport) -> Verdict:
    """The one decision every message and marker is rendered from."""
    engine = report.engine
    best = max(engine, key=lambda r: (r.median, -r.concurrency))
    ties = (best, *[r for r in engine if r is not best and ties_with(r, best)])
    defaults = next((r for r in engine if r.is_default), None)
    # Under a --per-host cap, larger sizes add no downloads in flight: nothing to say about growing them.
    edges = () if best.capped else tuple(_edges(engine, best, ties))
    return Verdict(best, ties, defaults, edges)


def _edges(engine: list[Row], best: Row, ties: tuple[Row, ...]) -> list[Edge]:
    """Along each axis where the best is the largest size tried: is every smaller size beyond noise below it?"""
    edges = []
    for axis in AXES:
        other = AXES[1 - AXES.index(axis)]
        line = sorted((r for r in engine if r.start_method == best.start_method and
                       getattr(r, other) == getattr(best, other)), key=lambda r: getattr(r, axis))
        if len(line) < 2 or line[-1] is not best:
            continue
        smaller = [r for r in ties if getattr(r, axis) < getattr(best, axis)]
        rival = max(smaller, key=lambda r: (r is line[-2], r.median), default=None)
        edges.append(Edge(axis, line[-2], rival))
    return edges


def advise(report: BenchReport) -> Advice:
    """The verdict, and the lines that say it."""
    verdict = judge(report)
    advice = Advice(verdict)
    advice.lines += _teaching(report, verdict.best)
    advice.lines += _noise(report, verdict)
    advice.lines += _edge_lines(verdict)
    if verdict.defaults is not None:
        advice.lines.append(_defaults_line(verdict))
    advice.recommendation = _recommendation(report, verdict)
    return advice


def _teaching(report: BenchReport, best: Row) -> list[str]:
    """Why processes x threads with streaming beats the textbook pool, in this run's numbers."""
    lines = [f"imgfetch at its best ({best.short}, {best.median:.0f} images/s) is " + " and ".join(gains(report, best)) + "."]
    if report.classic and report.sequential.median:
        classic = report.classic[0]
        lines.append(f"Why: the loop has 1 download in flight and the classic pool {classic.concurrency} (one per "
                     f"process, each idle while it waits on the network); imgfetch keeps {best.concurrency} in "
                     f"flight ({_in_flight(report, best)}) and streams each image back as it is saved.")
    return lines


def gains(report: BenchReport, best: Row) -> list[str]:
    """'62x the sequential loop', '21.7x ProcessPoolExecutor(3).map': the best row against the baselines."""
    return [f"{report.speedup(best):.0f}x the sequential loop",
            *(f"{best.median / row.median:.1f}x {row.label}" for row in report.classic if row.median)]


def _in_flight(report: BenchReport, row: Row) -> str:
    """'4 processes x 128 threads', and what --per-host and --rate make of them."""
    text = f"{counted(row.workers, 'process', 'es')} x {counted(row.threads, 'thread')}"
    per_host, rate = report.options.get("per_host"), report.options.get("rate")
    if row.capped:
        text = f"--per-host {per_host} caps its {text} on {counted(report.hosts, 'host')}"
    if rate:
        text += f"; --rate {rate:g} starts at most {rate:g} a second per host"
    return text


def _noise(report: BenchReport, verdict: Verdict) -> list[str]:
    lines = []
    best, ties = verdict.best, verdict.ties
    if report.settings.repeat < 2:
        lines.append("With --repeat 1 there is no spread to judge the noise by; the ranking may not hold.")
    elif best.median and (best.high - best.low) / best.median > NOISY:
        lines.append(f"Noisy: the best's own runs ranged over {pct((best.high - best.low) / best.median)} of its "
                     f"median; the machine may be busy. Rerun with --repeat {RERUN_REPEAT} or a longer --seconds.")
    if not verdict.crowned:
        low = min(r.median for r in ties)
        lines.append(f"Within noise: {_names(ties)} reached {low:.0f}-{best.median:.0f} images/s (within "
                     f"{pct(WITHIN)} of the highest median, or within {pct(NOISE_LIMIT)} with overlapping min-max); "
                     f"this run cannot rank them, so none is crowned.")
    return lines


def _names(rows: tuple[Row, ...] | list[Row]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    shorts = [r.short for r in rows]
    return shorts[0] if len(shorts) == 1 else ", ".join(shorts[:-1]) + f" and {shorts[-1]}"


def _edge_lines(verdict: Verdict) -> list[str]:
    """'Try larger' only while the curve is still rising; 'flattened' (and no 'Try larger') otherwise."""
    best, rising = verdict.best, verdict.rising
    flat = [edge for edge in verdict.edges if not edge.rising]
    if not rising:
        if not flat:
            return []
        axes = " and ".join(edge.axis for edge in flat)
        rivals = list({id(e.rival): e.rival for e in flat if e.rival is not None}.values())
        verb = "is" if len(rivals) == 1 else "are"
        return [f"The best, {best.short}, is the most {axes} tried, but {_names(rivals)} {verb} within noise of "
                f"it: the curve has flattened, so larger sizes are unlikely to help."]
    slower = " and ".join(f"{edge.neighbour.short} was {pct(below(edge.neighbour, best))} slower" for edge in rising)
    lines = [f"The best, {best.short}, is the most {' and '.join(edge.axis for edge in rising)} tried and the curve "
             f"is still rising: {slower}."]
    lines += [f"More {edge.axis} than {getattr(edge.rival, edge.axis)} did not help: {edge.rival.short} is within "
              f"noise of the best." for edge in flat if edge.rival is not None]
    grow = {axis: [getattr(best, axis)] for axis in AXES}
    for edge in rising:
        grow[edge.axis].append(2 * getattr(best, edge.axis))
    flags = " ".join(f"--{axis} {','.join(map(str, sizes))}" for axis, sizes in grow.items())
    return lines + [f"Try larger: imgfetch bench {flags}"]


def _defaults_line(verdict: Verdict) -> str:
    defaults, best = verdict.defaults, verdict.best
    assert defaults is not None
    name = f"get's defaults ({defaults.short}, {defaults.median:.0f} images/s)"
    if verdict.tied(defaults):
        if verdict.crowned:
            return f"{name} were the fastest, beyond noise of every other size."
        where = "the highest median" if defaults is best else gap_text(defaults, best)
        return f"{name} are among the sizes this run cannot rank ({where})."
    if defaults.high >= best.low:
        return (f"{name} are {gap_text(defaults, best)}, but their runs ({defaults.low:.0f}-{defaults.high:.0f}) "
                f"overlap the best's: rerun with --repeat {RERUN_REPEAT} to be sure.")
    return f"{name} are {gap_text(defaults, best)}."


def _recommendation(report: BenchReport, verdict: Verdict) -> str:
    pick, best, defaults = verdict.pick, verdict.best, verdict.defaults
    flags = pick.flags
    methods = {r.start_method for r in report.engine}
    if len(methods) > 1 or (defaults is not None and pick.start_method != defaults.start_method):
        flags += f" --start-method {pick.start_method}"
    why = "the fastest" if verdict.crowned else f"one of the {len(verdict.ties)} tied sizes"
    if not verdict.crowned and pick is best:
        why = f"the highest median of the {len(verdict.ties)} tied sizes"
    if pick is defaults:
        return (f"recommendation: imgfetch get {flags} ({pick.median:.0f} images/s, {why}). These are get's "
                f"defaults: plain `imgfetch get` does the same.")
    note = f"; get's defaults were {gap_text(defaults, best)}" if defaults is not None else ""
    return f"recommendation: imgfetch get {flags} ({pick.median:.0f} images/s, {why}{note})."
