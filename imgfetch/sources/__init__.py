"""URL lists in, streamed; per-URL problems become invalid entries, run-level ones raise InputError.

The README's Architecture section maps its modules.
"""
from __future__ import annotations

from .counting import ListCounter
from .entries import INPUT_FORMATS, iter_entries, list_format, open_entries
from .readers import Entry, entry_of

__all__ = ["INPUT_FORMATS", "Entry", "ListCounter", "entry_of", "iter_entries", "list_format", "open_entries"]
