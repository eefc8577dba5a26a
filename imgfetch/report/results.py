"""What download() returns: the records in input order, with counts, a table, pandas and thumbnails."""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Iterable

from ..records import FAILED, INVALID, OK, FetchResult, human_bytes
from . import contact
from .contact import CELL, COUNT
from .summary import TOP_REASONS, Summary

NOTEBOOK_EXTRA = "pip install 'imgfetch[notebook]'"
_HTML_ROWS = 10  # records shown in a notebook's table; to_pandas() has them all
_FIRST_COLUMNS = ("line", "status", "path", "error", "skipped", "format", "width", "height", "bytes", "url")  # to_pandas()
_INTEGER_COLUMNS = ("line", "bytes", "width", "height", "http_status", "attempts", "pid",  # nullable Int64 in pandas
                    "original_width", "original_height")


class Results(list):  # type: ignore[type-arg]
    """A list of FetchResult, one per input URL, in input order.

    >>> results = download("urls.txt", "out")                    # doctest: +SKIP
    >>> len(results.ok), len(results.failed), results.bytes       # doctest: +SKIP
    >>> print(results.summary())                                  # doctest: +SKIP
    >>> df = results.to_pandas()                                  # doctest: +SKIP
    >>> results.show(24)                                          # doctest: +SKIP
    """

    def __init__(self, records: Iterable[FetchResult] = (), out_dir: str | os.PathLike[str] | None = None,
                 summary: Summary | None = None, manifest: str | os.PathLike[str] | None = None, *,
                 listed: int | None = None, counts_only: bool = False) -> None:
        """``counts_only``: the run kept no records (``download(keep_records=False)``): the counts are ``summary``'s."""
        super().__init__(sorted(records, key=lambda r: (r.line is None, r.line or 0)))  # in input order
        self.out_dir = Path(out_dir) if out_dir is not None else None
        # where the records are; a URL (str) when they are on object storage
        self.manifest = manifest if isinstance(manifest, str) and "://" in manifest else \
            Path(manifest) if manifest is not None else None
        self.listed = listed  # the list's entries, once counted (None for standard input, or not counted yet)
        self.seconds = summary.seconds if summary is not None else 0.0
        self._summary = summary if counts_only and summary is not None else _count(self, self.seconds)

    def _subset(self, records: Iterable[FetchResult]) -> "Results":
        subset = Results(records, self.out_dir, None, self.manifest)
        subset.seconds = subset._summary.seconds = self.seconds
        return subset

    @property
    def ok(self) -> "Results":
        """The records whose image is on disk, whichever run fetched it (``.skipped``: an earlier one)."""
        return self._subset(r for r in self if r.status == OK)

    @property
    def failed(self) -> "Results":
        """The records that need a look: failed downloads and invalid lines."""
        return self._subset(r for r in self if r.status in (FAILED, INVALID))

    @property
    def skipped(self) -> "Results":
        """The records this run did not fetch: ok ones done by an earlier run, failures not retried."""
        return self._subset(r for r in self if r.skipped)

    @property
    def counts(self) -> dict[str, int]:
        """Records by status: ok, failed, invalid, duplicate (ok and failed include the skipped ones)."""
        return dict(self._summary.counts)

    @property
    def totals(self) -> Summary:
        """The counts behind ``summary()``: by status, skipped, failure reasons and kinds, bytes, seconds."""
        return self._summary

    @property
    def bytes(self) -> int:
        """Bytes downloaded by this run (files from earlier runs not counted)."""
        return self._summary.bytes

    def summary(self, reasons: int = TOP_REASONS) -> str:
        """The counts, then the commonest failure reasons ('27 × HTTP 404 Not Found')."""
        return self._summary.report(reasons)

    def __repr__(self) -> str:
        return f"<Results of {len(self)} URLs: {_counts_text(self._summary)}>"

    def to_pandas(self) -> Any:
        """A pandas DataFrame, one row per record (the manifest's columns plus ``abspath``); whole numbers
        are nullable Int64, so a missing width is <NA> and the others stay 138, not 138.0."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(f"Results.to_pandas() needs pandas: {NOTEBOOK_EXTRA}") from None
        rows = [{**r.to_json_dict(), "abspath": r.abspath} for r in self]
        columns = dict.fromkeys([*_FIRST_COLUMNS, *(rows[0] if rows else ()), "abspath"])
        frame = pd.DataFrame(rows, columns=list(columns))
        for name in _INTEGER_COLUMNS:
            frame[name] = pd.array([row[name] for row in rows], dtype="Int64")
        return frame

    def contact_sheet(self, n: int = COUNT, *, failed: bool = False, columns: int | None = None,
                      cell: int = CELL) -> Any:
        """A Pillow image: a grid of the first ``n`` thumbnails (failed URLs as labelled blanks if ``failed``)."""
        return contact.contact_sheet(self, self.out_dir, n=n, failed=failed, columns=columns, cell=cell)

    def show(self, n: int = COUNT, *, failed: bool = False, columns: int | None = None, cell: int = CELL,
             path: str | os.PathLike[str] | None = None) -> Any:
        """Show a contact sheet: displayed in a notebook; elsewhere returned (a PIL image).

        With ``path``, also saved there as a PNG.
        """
        return contact.show(self, n=n, failed=failed, columns=columns, cell=cell, path=path)

    def _repr_html_(self) -> str:
        """Jupyter: the counts, the commonest failures and the first rows."""
        esc = html.escape
        parts = [f"<div><b>imgfetch results</b>: {len(self):,} URLs &mdash; {esc(_counts_text(self._summary))}"]
        if self.out_dir is not None:
            parts.append(f" &mdash; in <code>{esc(str(self.out_dir))}</code>")
        parts.append("</div>")
        top = self._summary.top_reasons(TOP_REASONS)
        if top:
            rows = "".join(f"<tr><td style='text-align:right'>{count:,}</td><td style='text-align:left'>{esc(reason)}"
                           f"</td></tr>" for count, reason in top)
            parts.append(f"<table><thead><tr><th>URLs</th><th style='text-align:left'>failure</th></tr></thead>"
                         f"<tbody>{rows}</tbody></table>")
        head = "".join(f"<th style='text-align:left'>{name}</th>"
                       for name in ("line", "status", "file", "size", "image", "error"))
        body = "".join(_html_row(r) for r in self[:_HTML_ROWS])
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        if len(self) > _HTML_ROWS:
            parts.append(f"<div>&hellip; {len(self) - _HTML_ROWS:,} more rows (<code>.to_pandas()</code> "
                         f"for all, <code>.show()</code> for thumbnails)</div>")
        return "\n".join(parts)


def _count(records: Iterable[FetchResult], seconds: float) -> Summary:
    summary = Summary(seconds=seconds)
    for record in records:
        summary.add(record)
    return summary


def _counts_text(summary: Summary) -> str:
    return ", ".join(summary.shown_counts()) + (f"; {human_bytes(summary.bytes)} downloaded" if summary.bytes else "")


def _html_row(record: FetchResult) -> str:
    esc = html.escape
    image = f"{esc(record.format)} {record.width}&times;{record.height}" if record.format and record.width else ""
    cells = (esc(str(record.line if record.line is not None else "")), esc(record.status),
             esc(record.path or record.url), esc(human_bytes(record.bytes)), image, esc(record.error or ""))
    return "<tr>" + "".join(f"<td style='text-align:left'>{cell}</td>" for cell in cells) + "</tr>"
