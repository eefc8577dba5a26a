"""What the command line takes from its process: its standard streams, and whether stderr is a terminal.

``main(argv, env)`` uses nothing else (httpie's idea), so a test passes its own streams instead of a pty.
The bar reads its width from its stream as it redraws: a stream that is no real terminal gets 80 columns.
"""
from __future__ import annotations

import io
import sys
from dataclasses import dataclass, field
from typing import IO

from ..report.progress import is_terminal


@dataclass(frozen=True)
class Environment:
    """The command line's streams, and whether stderr is a terminal (there is a bar): by default what it says."""

    # standard input is read as bytes (gzip and encodings are sniffed): the text stream's buffer
    stdin: IO[bytes] = field(default_factory=lambda: getattr(sys.stdin, "buffer", None) or io.BytesIO())
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    stderr_isatty: bool | None = None

    def __post_init__(self) -> None:
        if self.stderr_isatty is None:
            object.__setattr__(self, "stderr_isatty", is_terminal(self.stderr))
