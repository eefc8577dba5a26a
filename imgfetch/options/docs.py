"""The words an option is shown with: its --help line and its row in the README's option table.

``python -m imgfetch.options.docs README.md`` rewrites the table between the README's markers.
"""
from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

from .definitions import Options
from .spec import declared, default_words, flag_of, shown, spec_of

TABLE_START = "<!-- options table: generated from imgfetch/options/definitions.py -->"
TABLE_END = "<!-- end of options table -->"


def usage_words(field: dataclasses.Field[Any]) -> str:
    """``--threads N``, ``--verify {fast,full,none}``, ``--insecure``."""
    spec = spec_of(field)
    if spec.action == "store_true":
        return flag_of(field)
    if spec.choices:
        return f"{flag_of(field)} {{{','.join(spec.choices)}}}"
    return f"{flag_of(field)} {spec.metavar or field.name.upper()}"


def help_line(field: dataclasses.Field[Any], here: bool = True) -> str:
    """The help text with its default; ``here`` adds this machine's value of a computed default."""
    spec, words = spec_of(field), default_words(field)
    if words is None:
        return spec.help
    if here and field.default_factory is not dataclasses.MISSING:
        words += f"; here {shown(field.default_factory())}"
    return f"{spec.help} (default: {words})"


def markdown_table(cls: type = Options) -> str:
    """The option table of one command's declarations, in Markdown."""
    rows = ["| option | default | what it does |", "|---|---|---|"]
    for field, spec in declared(cls):
        if spec.on_cli:
            cells = (f"`{usage_words(field)}`", default_words(field) or "", spec.help)
            rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)


def _table_span(text: str) -> re.Match[str] | None:
    return re.search(re.escape(TABLE_START) + r"\n(.*?)" + re.escape(TABLE_END), text, re.DOTALL)


def table_in(text: str) -> str | None:
    """The table between the markers of a README, or None where there are no markers."""
    found = _table_span(text)
    return found.group(1).rstrip("\n") if found else None


def rewrite(readme: Path) -> bool:
    """Put the current table between the README's markers; True if that changed the file."""
    text = readme.read_text(encoding="utf-8")
    found = _table_span(text)
    if found is None:
        raise SystemExit(f"{readme}: no {TABLE_START} ... {TABLE_END} markers")
    new = text[:found.start(1)] + markdown_table() + "\n" + text[found.end(1):]
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text

if __name__ == "__main__":
    for name in sys.argv[1:] or ["README.md"]:
        print(f"{name}: {'updated' if rewrite(Path(name)) else 'already up to date'}")
