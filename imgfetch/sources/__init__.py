"""URL lists in, streamed; per-URL problems become invalid entries, run-level ones raise InputError.

The README's Architecture section maps its modules.
"""
from __future__ import annotations

from .counting import ListCounter
from .entries import INPUT_FORMATS, SOURCE_COLUMN, Entries, iter_entries, list_files, list_format, open_entries
from .readers import MAX_RECORD_CHARS, MAX_URL_CHARS, Entry, entry_of
from .streams import RAW_PREFIX_CHARS

__all__ = ["INPUT_FORMATS", "MAX_RECORD_CHARS", "MAX_URL_CHARS", "RAW_PREFIX_CHARS", "SOURCE_COLUMN", "Entries", "Entry",
           "ListCounter", "entry_of", "iter_entries", "list_files", "list_format", "open_entries"]
