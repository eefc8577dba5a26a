"""Scripts that call imgfetch without ``if __name__ == "__main__":``.

Under spawn and forkserver, every worker process imports the main script again before it starts: a script
that downloads at its top level would start a run inside each worker, which starts workers... So the parent
stops such a call at once with one line naming it (``check_main_guard``), and a worker being bootstrapped
never starts a run (``refuse_in_worker``): it exits quietly, and the parent reports the pool's own line.
"""
from __future__ import annotations

import ast
import inspect
import multiprocessing
import os
import sys
from typing import Any

from ..errors import MissingMainGuard

WORKER_PREFIX = "imgfetch-"  # the names the pool gives its processes


def refuse_in_worker() -> None:
    """Inside an imgfetch worker process, a run can only come from re-importing an unguarded script."""
    if multiprocessing.current_process().name.startswith(WORKER_PREFIX):
        raise SystemExit(1)  # quietly: the parent sees the worker die before it is ready, and says why


def check_main_guard(start_method: str, executor: str = "process", scheduler: str | None = None) -> None:
    """Raise MissingMainGuard when this call comes from a script's top level and workers would re-run it."""
    spawns = executor == "dask" and scheduler is None or executor == "process" and start_method != "fork"
    if not spawns:
        return
    method = start_method if executor == "process" else "spawn"
    unreadable = _unreadable_main()
    if unreadable:
        raise MissingMainGuard(
            f"imgfetch: error: the main script ({unreadable}) is not a file, and with the {method} start method "
            f"every worker process must import it; save the script to a file (or pass start_method=\"fork\")")
    where = unguarded_call_site()
    if where:
        raise MissingMainGuard(
            f"imgfetch: error: {where} calls imgfetch outside `if __name__ == \"__main__\":`, and with the "
            f"{method} start method every worker process would run the "
            f"script again; put the call under that guard (or pass start_method=\"fork\")")


def _unreadable_main() -> str | None:
    """The name of a main script that workers cannot import again: one read from standard input."""
    main = sys.modules.get("__main__")
    filename = getattr(main, "__file__", None)
    if main is None or getattr(main, "__spec__", None) is not None or not filename:
        return None  # run with -m (imported by name), or interactive (nothing to import)
    return None if os.path.exists(filename) else filename


def unguarded_call_site() -> str | None:
    """'script.py:12' when the running ``__main__`` script is at a top-level line outside any
    ``if`` that tests ``__name__``; None when guarded, interactive (no file), or unknown."""
    main = sys.modules.get("__main__")
    filename = getattr(main, "__file__", None)
    if main is None or not filename:
        return None
    frame: Any = inspect.currentframe()  # None where the interpreter keeps no frames: then unknown
    top = None
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals is vars(main):
            top = frame
        frame = frame.f_back
    if top is None or os.path.abspath(top.f_code.co_filename) != os.path.abspath(filename):
        return None
    try:
        with open(filename, "rb") as handle:
            tree = ast.parse(handle.read(), filename)
    except (OSError, SyntaxError, ValueError):
        return None
    line = top.f_lineno
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _tests_name(node.test) and node.lineno <= line <= (node.end_lineno or line):
            return None
    return f"{filename}:{line}"


def _tests_name(test: ast.expr) -> bool:
    return any(isinstance(node, ast.Name) and node.id == "__name__" for node in ast.walk(test))
