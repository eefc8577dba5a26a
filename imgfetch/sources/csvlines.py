"""The physical lines of a CSV or TSV file as csv.reader gets them, over-long records cut short."""
from __future__ import annotations

import io
import re

from .streams import MAX_LINE_END, RAW_PREFIX_CHARS, SKIP_PIECE

# csv's field states (default dialect) while following an over-long record's quotes
_START, _UNQUOTED, _QUOTED, _AFTER_QUOTE = "start", "unquoted", "quoted", "after quote"


class CsvLines:
    """The physical lines of a CSV or TSV file for csv.reader, no record over ``limit`` characters.

    csv.reader gets a record's lines while the record stays under the limit. A record that
    grows past it is read on to its end here, in bounded pieces, following its quotes as csv
    would; csv.reader then gets an empty line, or a closing quote if it was inside a quoted
    field, and the reader of records finds the record's length in end_record().
    """

    def __init__(self, text: io.TextIOWrapper, delimiter: str, limit: int) -> None:
        self._readline, self.limit = text.readline, limit
        d = re.escape(delimiter)
        self._unquoted = re.compile(f"[^{d}\r\n]*")  # the rest of an unquoted field
        self._quoted = re.compile('[^"]*(?:""[^"]*)*')  # the rest of a quoted one, doubled quotes too
        self._delimiter = delimiter
        self.head, self._length, self._ending = "", 0, 0

    def __iter__(self) -> CsvLines:
        return self

    def __next__(self) -> str:
        line = self._readline(self.limit + MAX_LINE_END)
        if not line:
            raise StopIteration
        continuing = self._length > 0  # csv asks for more of a record only inside a quoted field
        if not continuing:
            self.head = line[:RAW_PREFIX_CHARS]
        self._length += len(line)
        self._ending = len(line) - len(line.rstrip("\r\n"))
        if self._length - self._ending <= self.limit:
            return line
        self._skip_record(line, quoted=continuing)
        return '"\n' if continuing else "\n"

    def end_record(self) -> int | None:
        """The length of the record csv.reader just returned if it was too long; then reset."""
        length, self._length = self._length - self._ending, 0
        return length if length > self.limit else None

    def _skip_record(self, piece: str, quoted: bool) -> None:
        """Read up to the end of the record ``piece`` belongs to, counting its characters."""
        state = _QUOTED if quoted else _START
        while True:
            body = piece.rstrip("\r\n")
            state = self._follow(body, state)
            if len(body) < len(piece) and state != _QUOTED:
                break  # a line end outside quotes ends the record
            piece = self._readline(SKIP_PIECE)
            if not piece:
                break
            self._length += len(piece)
        self._ending = len(piece) - len(piece.rstrip("\r\n"))

    def _follow(self, text: str, state: str) -> str:
        """csv's field states (default dialect) from ``state`` through ``text``, by jumps."""
        i, end, delimiter = 0, len(text), self._delimiter
        while i < end:
            if state == _QUOTED:
                i = self._quoted.match(text, i).end()
                if i == end:
                    return _QUOTED
                state, i = _AFTER_QUOTE, i + 1
            elif state == _AFTER_QUOTE and text[i] == '"':
                state, i = _QUOTED, i + 1  # a doubled quote inside quotes
            elif state == _START and text[i] == '"':
                state, i = _QUOTED, i + 1
            elif text[i] == delimiter:
                state, i = _START, i + 1
            else:  # unquoted text, or text after a closing quote: up to the next delimiter
                state, i = _UNQUOTED, self._unquoted.match(text, i).end()
        return state
