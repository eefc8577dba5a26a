"""The one frozen options object shared by the CLI, the library and the workers.

The README's Architecture section maps its modules.
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
