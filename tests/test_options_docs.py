"""One definition per option: --help and the README's table say what the declarations say."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from imgfetch.bench.settings import SHARED_WITH_GET, BenchOutputs, BenchSettings
from imgfetch.cli import main
from imgfetch.options import Options
from imgfetch.options.docs import help_line, markdown_table, table_in
from imgfetch.options.spec import declared, flag_of
from imgfetch.server import ServerSettings

README = Path(__file__).resolve().parents[1] / "README.md"
NOT_DECLARED = {"-h", "--help", "-q", "--quiet", "-v", "-vv", "--verbose", "--traceback", "-o", "--out"}


def squeeze(text: str) -> str:
    """Text without white space: argparse wraps lines (even inside --max-time)."""
    return "".join(text.split())


def help_of(capsys: pytest.CaptureFixture[str], command: str, monkeypatch: pytest.MonkeyPatch | None = None) -> str:
    if monkeypatch is not None:
        monkeypatch.setenv("COLUMNS", "1000")  # one line per option: no flag is broken at a hyphen
    assert main([command, "--help"]) == 0
    return capsys.readouterr().out


def test_readme_table_is_the_declarations():
    table = table_in(README.read_text(encoding="utf-8"))
    assert table is not None, "README.md lost its options table markers"
    assert table == markdown_table(Options), "README.md is stale: run python -m imgfetch.options.docs README.md"
    flags = re.findall(r"^\| `(--[a-z-]+)", table, re.MULTILINE)
    assert flags == [flag_of(f) for f, spec in declared(Options) if spec.on_cli]


COMMANDS = {"get": [(Options, None)], "serve": [(ServerSettings, None)],
            "bench": [(BenchSettings, None), (BenchOutputs, None), (Options, SHARED_WITH_GET)]}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_shows_every_declared_option_with_its_help_and_default(capsys, monkeypatch, command):
    text = help_of(capsys, command, monkeypatch)
    fields = [field for cls, names in COMMANDS[command] for field, spec in declared(cls)
              if spec.on_cli and (names is None or field.name in names)]
    for field in fields:
        assert squeeze(help_line(field)) in squeeze(text), field.name
    options_part = text.split("\nexamples:")[0].split("\nwhat it prints:\n  default")[0]
    shown = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", options_part))
    assert shown - NOT_DECLARED - {flag_of(field) for field in fields} == set()


def test_the_get_help_names_defaults_that_the_library_uses(capsys):
    text = squeeze(help_of(capsys, "get"))
    defaults = Options()
    assert f"(default:{defaults.threads})" in text and f"(default:{defaults.verify})" in text
    assert f"here{defaults.workers})" in text


def test_cli_and_library_build_the_same_options(server, tmp_path):
    """An option given on the command line reaches Options as the library's keyword does."""
    from imgfetch.cli.get import options_from_args
    from imgfetch.cli.parser import build_parser

    argv = ["get", "u.txt", "-o", "o", "--threads", "3", "--header", "A: b", "--keep-columns", "id,t",
            "--formats", "jpg,png", "--max-bytes", "2M", "--insecure", "--rate", "2.5", "-q"]
    from_cli = options_from_args(build_parser().parse_args(argv))
    from_library = Options(threads=3, headers={"A": "b"}, keep_columns="id,t", formats=["JPG", "PNG"],
                           max_bytes="2M", insecure=True, rate=2.5, progress=False)
    assert from_cli == from_library
    untouched = {f.name for f in dataclasses.fields(Options)} - {"threads", "headers", "keep_columns", "formats",
                                                                  "max_bytes", "insecure", "rate", "progress"}
    assert all(getattr(from_cli, name) == getattr(Options(), name) for name in untouched)


def test_type_checkers_see_each_functions_keywords_as_declared():
    """options/typed.py is what the declarations make of it now, and names each function's keywords, typed as its
    signature says (mypy checks a misspelled one in tests/typing/library_keywords.py)."""
    import inspect
    import typing

    from imgfetch import Downloader, download, fetch, iter_download
    from imgfetch.options import typed
    from imgfetch.options.keywords import TYPED, typed_module

    assert TYPED.read_text(encoding="utf-8") == typed_module(), "stale: run python -m imgfetch.options.keywords"
    for function, keywords in [(fetch, typed.FetchKeywords), (download, typed.DownloadKeywords),
                               (iter_download, typed.DownloadKeywords), (Downloader.__init__, typed.DownloaderKeywords)]:
        declared_types = {name: hint.__forward_arg__ for name, hint in keywords.__annotations__.items()}
        parameters = inspect.signature(function).parameters.values()
        code = function.__code__  # the function's own keyword-only parameters (options=, download's keep_records=)
        own = set(code.co_varnames[code.co_argcount:code.co_argcount + code.co_kwonlyargcount])
        assert declared_types == {p.name: p.annotation for p in parameters
                                  if p.kind == p.KEYWORD_ONLY and p.name not in own}, function
        assert typing.get_type_hints(keywords, vars(typed))  # every annotation names a real type
