"""argparse arguments derived from option declarations (``imgfetch.options.spec.option`` fields).

argparse gets no defaults of its own: an option not given stays out of the values, so the dataclass's
default applies, and --help shows the declared default.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Collection

from .docs import help_line
from .spec import declared, flag_of

Argument = tuple[tuple[str, ...], dict[str, Any]]  # add_argument's positional and keyword arguments


def add_declared(parser: argparse.ArgumentParser, cls: type, names: Collection[str] | None = None,
                 first_in_group: dict[str, list[Argument]] | None = None, group: str | None = None,
                 groups: dict[str, Any] | None = None) -> dict[str, Any]:
    """Add the CLI options of an options dataclass (or just ``names``), grouped as declared or in ``group``.

    ``first_in_group`` adds arguments that are not declared options (``-o``) at the top of a group.
    Returns the argument groups by title; pass them back as ``groups`` to add more to the same ones.
    """
    groups = {} if groups is None else groups
    for field, spec in declared(cls, names):
        if not spec.on_cli:
            continue
        title = group or spec.group
        if title not in groups:
            groups[title] = parser.add_argument_group(title)
            for args, kwargs in (first_in_group or {}).get(title, []):
                groups[title].add_argument(*args, **kwargs)
        groups[title].add_argument(flag_of(field), **_argument(field))
    return groups


def _argument(field: dataclasses.Field[Any]) -> dict[str, Any]:
    spec = field.metadata["option"]
    kwargs: dict[str, Any] = {"dest": field.name, "default": None, "help": help_line(field).replace("%", "%%")}
    if spec.action:
        kwargs["action"] = spec.action
    else:
        kwargs.update(choices=spec.choices, type=spec.parse or str)
    if spec.action != "store_true" and not spec.choices:  # with choices, argparse shows {a,b,c}
        kwargs["metavar"] = spec.metavar
    return kwargs


def given(cls: type, args: argparse.Namespace, names: Collection[str] | None = None) -> dict[str, Any]:
    """The declared options (or just ``names``) the command line gave; append lists become tuples."""
    values = {}
    for field, spec in declared(cls, names):
        value = getattr(args, field.name, None) if spec.on_cli else None
        if value is not None:
            values[field.name] = tuple(value) if isinstance(value, list) else value
    return values


def flag_for(classes: tuple[type, ...], name: str) -> str:
    """An option's command-line spelling, from the first options class that declares it."""
    for cls in classes:
        for field, _ in declared(cls, (name,)):
            return flag_of(field)
    return "--" + name.replace("_", "-")
