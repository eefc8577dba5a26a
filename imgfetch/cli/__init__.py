"""The command line: argparse (derived from the option declarations) -> a command -> an exit status.

- ``parser.py``: the parser of ``get``, ``bench`` and ``serve``; the arguments themselves come from
  ``imgfetch.options.arguments`` (the declarations).
- ``get.py``, ``bench.py``, ``serve.py``: the commands; what they print to the terminal is printed here.
- ``usage.py``: help texts, examples, and usage errors that guide; ``logs.py``: log lines above the bar.
- ``main`` here is the only place in imgfetch that turns exceptions into exit codes.
"""
from __future__ import annotations

import argparse
import enum
import re
import signal
import sys
from typing import Any, Sequence


class ExitStatus(enum.IntEnum):
    OK = 0
    SOME_FAILED = 1
    ERROR = 2
    INTERRUPTED = 128 + signal.SIGINT
    TERMINATED = 128 + signal.SIGTERM


_SAID_ERROR = re.compile(r"^(imgfetch: )?error: ", re.IGNORECASE)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    from ..store.files import ignore_file_size_signal
    from .parser import build_parser, parse_command_line

    ignore_file_size_signal()
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        parser.print_help()
        return ExitStatus.OK
    try:
        args = parse_command_line(parser, argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse has already said why
        return int(exc.code or 0)
    from .logs import setup_logging

    setup_logging(args)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..errors import ImgFetchError, Interrupted
    from ..options import OptionError

    try:
        return _command(args)
    except OptionError as exc:  # bad options, from their declared checks
        return _fail(args, exc.spelled(_flag_for(args.command)))
    except ValueError as exc:
        return _fail(args, str(exc))
    except Interrupted as exc:
        return ExitStatus.TERMINATED if exc.signum == signal.SIGTERM else ExitStatus.INTERRUPTED
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED
    except ImgFetchError as exc:
        return _fail(args, str(exc))
    except OSError as exc:
        return _fail(args, f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))


def _command(args: argparse.Namespace) -> int:
    if args.command == "serve":
        from .serve import serve_command

        return serve_command(args)
    if args.command == "bench":
        from .bench import run_bench_command

        return run_bench_command(args)
    from .get import get_command

    return get_command(args)


def _flag_for(command: str) -> Any:
    """How the command spells an option named in an error message."""
    from ..bench.settings import BenchOutputs, BenchSettings
    from ..options import Options
    from ..options.arguments import flag_for
    from ..server.settings import ServerSettings

    classes = {"serve": (ServerSettings,), "bench": (BenchSettings, BenchOutputs, Options)}.get(command, (Options,))
    return lambda name: "-v" if name == "log_pids" and command == "get" else flag_for(classes, name)


def _fail(args: argparse.Namespace, message: str) -> int:
    if getattr(args, "traceback", False):
        import traceback

        traceback.print_exc()
    # A message may carry its own "imgfetch: error:" (MissingMainGuard, a SystemExit that speaks for itself)
    # or a library's "error: ": say it once.
    print(f"imgfetch: error: {_SAID_ERROR.sub('', message)}", file=sys.stderr)
    return ExitStatus.ERROR

