"""How one option is declared: ``option(...)``, a dataclass field whose :class:`OptionSpec` metadata carries
everything else about it, from which the CLI's argparse, the library's keyword signatures and the README's
option table are all derived."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterator

Check = Callable[[str, Any], Any]  # (option name, value) -> the value to keep; raises imgfetch.errors.OptionError


@dataclass(frozen=True)
class OptionSpec:
    """Everything about one option except its name, type and default (those are the field's)."""

    help: str
    group: str = ""                 # the --help section; "" = library only, no flag
    check: Check | None = None
    flag: str | None = None         # default: --name-with-dashes
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None  # argparse type=; None: the text as given
    choices: tuple[str, ...] | None = None
    action: str | None = None       # argparse action: store_true, append
    default_text: str | None = None  # how the default reads where the value alone would not say it
    accepts: str | None = None      # the library's annotation where it takes more than the field's type
    per_url: bool = True            # applies to one URL fetched in-process (fetch()); False: a run's option

    @property
    def on_cli(self) -> bool:
        return bool(self.group)


def option(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
           **spec: Any) -> Any:
    """A dataclass field declared with its :class:`OptionSpec` (keyword arguments are its fields)."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"option": OptionSpec(**spec)})


def redeclared(cls: type, name: str, default: Any) -> Any:
    """``cls``'s option ``name`` declared again with another default: the same check, help, flag and limits."""
    field = next(field for field in dataclasses.fields(cls) if field.name == name)
    return dataclasses.field(default=default, metadata=field.metadata)


def spec_of(field: dataclasses.Field[Any]) -> OptionSpec:
    return field.metadata["option"]


def declared(cls: type, names: Collection[str] | None = None) -> Iterator[tuple[dataclasses.Field[Any], OptionSpec]]:
    """The fields of an options dataclass (or just ``names``) with their specs, in declaration order."""
    for field in dataclasses.fields(cls):
        if names is None or field.name in names:
            yield field, spec_of(field)


def flag_of(field: dataclasses.Field[Any]) -> str:
    """The option's command-line spelling."""
    return spec_of(field).flag or "--" + field.name.replace("_", "-")


def default_words(field: dataclasses.Field[Any]) -> str | None:
    """The default as help and docs say it: the spec's words, else the value (None: nothing to say)."""
    spec = spec_of(field)
    if spec.default_text is not None:
        return spec.default_text
    value = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
    if value is None or value is False or value == ():
        return None
    return shown(value)


def shown(value: Any) -> str:
    """A value as the command line would take it: 1,2,4 for a tuple, 0.5 or 30 for a float."""
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def check_fields(options: Any) -> None:
    """Run every field's check on a frozen dataclass instance, keeping the values they return."""
    for field, spec in declared(type(options)):
        if spec.check is not None:
            value = spec.check(field.name, getattr(options, field.name))
            object.__setattr__(options, field.name, value)
