"""The one frozen options object shared by the CLI, the library and the workers.

The README's Architecture section maps its modules.
"""
from ..errors import OptionError
from .definitions import KNOWN_FORMATS, START_METHODS, Options, default_workers
from .values import usable_cpus

__all__ = ["Options", "OptionError", "usable_cpus", "default_workers", "KNOWN_FORMATS", "START_METHODS"]
