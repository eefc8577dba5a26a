"""The library's keyword arguments, derived from the declarations: the signatures of ``fetch``, ``download``,
``iter_download`` and ``Downloader`` (for ``help()``, ``inspect.signature``, a notebook's completion), Options
from keywords, and typed.py's TypedDicts for type checkers. ``None`` for an option whose default is computed
(``workers``, ``start_method``) asks for that default.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
from pathlib import Path
from typing import Any, Callable, Collection, Mapping

from .definitions import Options
from .spec import OptionSpec, declared

_FIELDS = {f.name: f for f in dataclasses.fields(Options)}
NOT_FOR_A_DOWNLOADER = ("progress", "input_format", "url_column", "output_format", "shard_size")  # a bar, and list files
TYPED = Path(__file__).with_name("typed.py")


def options_from_keywords(function: Callable[..., Any], given: Mapping[str, Any], options: Options | None) -> Options:
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


def annotation(field: dataclasses.Field[Any], spec: OptionSpec) -> str:
    """What the library takes for an option: its choices as a Literal, None where that asks for the default."""
    optional = " | None" if "None" in str(field.type) else ""
    text = spec.accepts or (f"Literal{list(spec.choices)}{optional}" if spec.choices else str(field.type))
    return text + " | None" if computed(field.name) and "None" not in text else text


def keyword_signature(function: Callable[..., Any], *, per_url: bool = False,
                      leave_out: Collection[str] = ()) -> inspect.Signature:
    """The function's own parameters, then one keyword argument per option (per_url: only those of one URL;
    ``leave_out``: options that do not apply to it), then ``options``."""
    own = list(inspect.signature(function).parameters.values())[:-2]  # without options and **kwargs
    keywords = []
    for field, spec in declared(Options):
        if per_url and not spec.per_url or field.name in leave_out:
            continue
        default = None if computed(field.name) else field.default
        keywords.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                          annotation=annotation(field, spec)))
    keywords.append(inspect.Parameter("options", inspect.Parameter.KEYWORD_ONLY, default=None,
                                      annotation="Options | None"))
    return inspect.Signature(own + keywords, return_annotation=inspect.signature(function).return_annotation)


def typed_module() -> str:
    """typed.py's text: one TypedDict of keyword arguments per function, sharing what they share."""
    names = [field.name for field, _ in declared(Options)]
    fetch = {field.name for field, spec in declared(Options) if spec.per_url}
    downloader = set(names) - set(NOT_FOR_A_DOWNLOADER)
    classes = [("_SharedKeywords", "TypedDict, total=False", fetch & downloader,
                "The keyword arguments fetch() and Downloader share."),
               ("FetchKeywords", "_SharedKeywords, total=False", fetch - downloader, "fetch()'s keyword arguments."),
               ("DownloaderKeywords", "_SharedKeywords, total=False", downloader - fetch,
                "Downloader()'s keyword arguments."),
               ("DownloadKeywords", "DownloaderKeywords, total=False", set(names) - downloader,
                "download()'s and iter_download()'s keyword arguments.")]
    lines = ['"""The library\'s keyword arguments for type checkers: ``**kwargs: Unpack[DownloadKeywords]``.', "",
             "Written by ``python -m imgfetch.options.keywords`` from the declarations in definitions.py (the names,",
             "and the types that keywords.annotation gives the signatures); do not edit: a test fails when it is stale.",
             '"""', "from __future__ import annotations", "", "import os",
             "from typing import Any, Callable, Literal, Mapping, Sequence, TypedDict"]
    for name, bases, members, doc in classes:
        lines += ["", "", f"class {name}({bases}):", f'    """{doc}"""', ""]
        lines += [f"    {field.name}: {annotation(field, spec)}" for field, spec in declared(Options)
                  if field.name in members]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    text = typed_module()
    stale = not TYPED.exists() or TYPED.read_text(encoding="utf-8") != text
    if stale:
        TYPED.write_text(text, encoding="utf-8")
    print(f"{TYPED}: {'updated' if stale else 'already up to date'}")
