"""The library's keyword arguments, derived from the declarations: signatures, and Options from keywords.

``fetch``, ``download``, ``iter_download`` and ``Downloader`` take the options as keyword arguments.
Their signatures (``help()``, ``inspect.signature``, a notebook's completion) are built here from
:class:`Options`, with types and defaults; ``None`` for an option whose default is computed
(``workers``, ``start_method``) asks for that default.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
from typing import Any, Callable, Collection

from .definitions import Options
from .spec import declared

_FIELDS = {f.name: f for f in dataclasses.fields(Options)}


def options_from_keywords(function: Callable[..., Any], given: dict[str, Any], options: Options | None) -> Options:
    """Options from a function's keyword arguments, over ``options`` if given; TypeError for an unknown one."""
    allowed = function.__signature__.parameters  # type: ignore[attr-defined]
    name_of = function.__qualname__.replace(".__init__", "")
    for name in given:
        if name not in allowed or name not in _FIELDS:
            close = difflib.get_close_matches(name, [p for p in allowed if p in _FIELDS], n=1)
            raise TypeError(f"{name_of}() got an unexpected keyword argument {name!r}"
                            + (f"; did you mean {close[0]!r}?" if close else ""))
    values = {name: value for name, value in given.items() if value is not None or not computed(name)}
    if options is None:
        return Options(**values)
    return options.replace(**values) if values else options


def computed(name: str) -> bool:
    """Whether an option's default is computed (None then asks for it)."""
    return _FIELDS[name].default_factory is not dataclasses.MISSING


def keyword_signature(function: Callable[..., Any], *, per_url: bool = False,
                      leave_out: Collection[str] = ()) -> inspect.Signature:
    """The function's own parameters, then one keyword argument per option (per_url: only those of one URL;
    ``leave_out``: options that do not apply to it), then ``options``."""
    own = list(inspect.signature(function).parameters.values())[:-2]  # without options and **kwargs
    keywords = []
    for field, spec in declared(Options):
        if per_url and not spec.per_url or field.name in leave_out:
            continue
        optional = " | None" if "None" in str(field.type) else ""
        annotation = spec.accepts or (f"Literal{list(spec.choices)}{optional}" if spec.choices else str(field.type))
        if computed(field.name) and "None" not in annotation:
            annotation += " | None"
        default = None if computed(field.name) else field.default
        keywords.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                          annotation=annotation))
    keywords.append(inspect.Parameter("options", inspect.Parameter.KEYWORD_ONLY, default=None,
                                      annotation="Options | None"))
    return inspect.Signature(own + keywords, return_annotation=inspect.signature(function).return_annotation)
