"""URL lists in: text, CSV, TSV or JSON Lines (optionally gzipped), parquet, a folder of lists, stdin or any
iterable, streamed.

Per-URL problems become invalid Entry records; run-level ones raise InputError.
streams: opening, gzip, sniffing, numbered lines; csvlines: CSV records kept under the size
limit; readers: Entry, one URL's entry (entry_of) and each format's reader; parquet: parquet lists (pyarrow,
a batch of rows at a time); entries: open_entries, the lazy iterator, and folders of lists;
counting: ListCounter, a list file's entries counted in the background for the progress bar's total.
"""
from __future__ import annotations

from .counting import ListCounter
from .entries import INPUT_FORMATS, SOURCE_COLUMN, Entries, iter_entries, list_files, list_format, open_entries
from .readers import MAX_RECORD_CHARS, MAX_URL_CHARS, Entry, entry_of
from .streams import RAW_PREFIX_CHARS

__all__ = ["INPUT_FORMATS", "MAX_RECORD_CHARS", "MAX_URL_CHARS", "RAW_PREFIX_CHARS", "SOURCE_COLUMN", "Entries", "Entry",
           "ListCounter", "entry_of", "iter_entries", "list_files", "list_format", "open_entries"]
