"""``imgfetch bench --json``: the settings, the machine, every run of every row and the advice."""
from __future__ import annotations

import os
import platform
from typing import Any

from ..options import usable_cpus
from .advice import Advice
from .bursts import BURST
from .plan import BenchReport, Row

SCHEMA = "imgfetch-bench/2"
VERSIONS_OF = ("requests", "urllib3", "pillow", "matplotlib")  # the packages whose versions shape the numbers


def machine_info() -> dict[str, Any]:
    """The machine and the versions that shape the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__

    versions: dict[str, str | None] = {"imgfetch": __version__}
    for package in VERSIONS_OF:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {"usable_cpus": usable_cpus(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            "machine": platform.machine(), "versions": versions}


def row_json(report: BenchReport, row: Row) -> dict[str, Any]:
    """One row: its size, its summary numbers and each of its runs."""
    speedup = report.speedup(row)
    return {
        "kind": row.kind, "label": row.label, "workers": row.workers, "threads": row.threads, "slots": row.slots,
        "concurrency": row.concurrency, "start_method": row.start_method, "chunksize": row.chunksize,
        "is_default": row.is_default,
        "images_per_s": {"median": row.median, "min": row.low, "max": row.high},
        "images": row.images, "speedup": speedup, "efficiency": speedup / row.concurrency,
        "failures": row.failures, "first_s": row.first_s,
        "runs": [{"seconds": run.seconds, "images": run.images, "failures": run.failures, "bytes": run.bytes,
                  "first_s": run.first_s, "images_per_s": run.images_per_s,
                  "pid_counts": {str(pid): n for pid, n in run.pid_counts.items()}} for run in row.runs],
    }


def _settings_json(report: BenchReport) -> dict[str, Any]:
    s = report.settings
    server = None if s.urls is not None else {"count": report.url_count, "latency_ms": s.latency_ms,
                                              "latency_spread": s.latency_spread}
    return {"source": report.source, "urls": s.urls, "url_count": report.url_count, "server": server,
            "limit": s.limit, "workers": list(s.workers), "threads": list(s.threads),
            "start_methods": sorted({r.start_method for r in report.engine if r.start_method}),
            "classic_workers": list(s.classic_workers), "chunksize": s.chunksize, "repeat": s.repeat,
            "seconds": s.seconds, "ramp": s.ramp, **report.options}


def _advice_json(advice: Advice) -> dict[str, Any]:
    verdict = advice.verdict
    rec = verdict.pick
    pick = {"workers": rec.workers, "threads": rec.threads, "start_method": rec.start_method,
            "images_per_s": rec.median}
    return {"best": advice.best.label + " " + advice.best.short, "crowned": verdict.crowned, "recommended": pick,
            "tied": [row.short for row in verdict.ties], "edges": [edge.axis for edge in verdict.edges],
            "still_rising": [edge.axis for edge in verdict.rising],
            "defaults_below_best": (1 - verdict.defaults.median / advice.best.median
                                    if verdict.defaults is not None and advice.best.median else None),
            "lines": advice.lines, "recommendation": advice.recommendation}


def to_json(report: BenchReport, advice: Advice) -> dict[str, Any]:
    """The whole document, ``SCHEMA`` first."""
    return {
        "schema": SCHEMA,
        "date": report.date,
        "wall_s": report.wall_s,
        "machine": machine_info(),
        "settings": _settings_json(report),
        "rows": [row_json(report, row) for row in report.rows],
        "advice": _advice_json(advice),
        "bursts": None if report.bursts is None else {
            "urls_per_burst": BURST, "warm_downloader_s": list(report.bursts.warm_s),
            "fresh_download_s": list(report.bursts.fresh_s)},
    }
