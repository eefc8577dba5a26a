"""The one frozen options object shared by the CLI, the library and the workers.

- ``definitions.py``: :class:`Options`, every option of a run declared once (type, default, check, help, flag).
- ``values.py``: the fixed values options draw on (choices, pool defaults).
- ``spec.py``: ``option()``, the field declaration (a bad value raises ``imgfetch.errors.OptionError``).
- ``checks.py``: the checks the declarations name, and ``parse_size``.
- ``docs.py``: the README's option table, rendered from the declarations.
- ``keywords.py``: the library's keyword arguments and signatures, derived from the declarations.
- ``typed.py``: those keyword arguments as TypedDicts for type checkers, written by keywords.py.
"""
from ..errors import OptionError
from .checks import parse_size
from .definitions import (
    INPUT_FORMATS,
    KNOWN_FORMATS,
    NAMINGS,
    OUTPUT_FORMATS,
    START_METHODS,
    VERIFY_MODES,
    Options,
    default_start_method,
    default_workers,
)
from .spec import OptionSpec, option
from .values import usable_cpus

__all__ = [
    "Options", "OptionError", "OptionSpec", "option", "parse_size", "usable_cpus", "default_workers",
    "default_start_method", "KNOWN_FORMATS", "START_METHODS", "VERIFY_MODES", "NAMINGS", "INPUT_FORMATS", "OUTPUT_FORMATS",
]
