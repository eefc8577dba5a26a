"""The command line: argparse -> a command -> an exit status (the README's Architecture section maps its modules)."""
from __future__ import annotations

import argparse
import contextlib
import enum
import re
import signal
import sys
from typing import Any, Sequence

from .environment import Environment


class ExitStatus(enum.IntEnum):
    """The exit status of ``imgfetch``; the README's table says when each is given."""

    OK = 0
    SOME_FAILED = 1
    ERROR = 2
    INTERRUPTED = 128 + signal.SIGINT
    TERMINATED = 128 + signal.SIGTERM


_SAID_ERROR = re.compile(r"^(imgfetch: )?error: ", re.IGNORECASE)


def main(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Run the command line (``sys.argv[1:]`` by default) in ``env`` (this process's streams by default)."""
    from ..store.files import ignore_file_size_signal
    from .parser import build_parser, parse_command_line

    env = Environment() if env is None else env
    ignore_file_size_signal()
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        parser.print_help(env.stdout)
        return ExitStatus.OK
    try:
        with contextlib.redirect_stdout(env.stdout), contextlib.redirect_stderr(env.stderr):  # argparse's own words
            args = parse_command_line(parser, argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse has already said why
        return int(exc.code or 0)
    from .logs import logging_to

    with logging_to(env.stderr, args):
        return _run(args, env)


def _run(args: argparse.Namespace, env: Environment) -> ExitStatus:
    from ..errors import ImgFetchError, Interrupted, OptionError

    try:
        return _command(args, env)
    except OptionError as exc:  # bad options, from their declared checks
        return _fail(args, env, exc.spelled(_flag_for(args.command)))
    except Interrupted as exc:
        return ExitStatus.TERMINATED if exc.signum == signal.SIGTERM else ExitStatus.INTERRUPTED
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED
    except (ValueError, ImgFetchError) as exc:
        return _fail(args, env, str(exc))
    except OSError as exc:
        return _fail(args, env, f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))


def _command(args: argparse.Namespace, env: Environment) -> ExitStatus:
    if args.command == "serve":
        from .serve import serve_command

        return serve_command(args, env)
    if args.command == "bench":
        from .bench import run_bench_command

        return run_bench_command(args, env)
    from .get import get_command

    return get_command(args, env)


def _flag_for(command: str) -> Any:
    """How the command spells an option named in an error message."""
    from ..bench.settings import BenchOutputs, BenchSettings
    from ..options import Options
    from ..options.arguments import flag_for
    from ..server.settings import ServerSettings

    classes = {"serve": (ServerSettings,), "bench": (BenchSettings, BenchOutputs, Options)}.get(command, (Options,))
    return lambda name: "-v" if name == "log_pids" and command == "get" else flag_for(classes, name)


def _fail(args: argparse.Namespace, env: Environment, message: str) -> ExitStatus:
    if getattr(args, "traceback", False):
        import traceback

        traceback.print_exc(file=env.stderr)
    # A message may carry its own "imgfetch: error:" (MissingMainGuard, a SystemExit that speaks for itself)
    # or a library's "error: ": say it once.
    print(f"imgfetch: error: {_SAID_ERROR.sub('', message)}", file=env.stderr)
    return ExitStatus.ERROR

