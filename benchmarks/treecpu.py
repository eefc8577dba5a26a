"""Run a command and measure the CPU time of its whole process tree (Linux).

    python benchmarks/treecpu.py --json OUT.json -- CMD ARGS...

The wrapper makes itself a child subreaper (prctl(PR_SET_CHILD_SUBREAPER)), so every descendant
that loses its parent (for example the workers of a multiprocessing fork server) is re-parented to
it instead of to init. It reaps every descendant, so the CPU time of all of them ends up in its
getrusage(RUSAGE_CHILDREN). After CMD exits it waits at most --orphan-wait seconds (default 10) for
the remaining descendants, then SIGKILLs them. It exits with CMD's exit code (128 + N for signal N).

JSON written: wall_s (start to CMD's exit), user_s, sys_s, cpu_s (user + sys of every reaped
descendant), returncode, plus tree_wall_s (start to the last descendant reaped), orphans_reaped,
orphans_killed and argv.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


def my_children() -> list[int]:
    """PIDs whose parent is this process (orphans re-parented to us included)."""
    me, found = os.getpid(), []
    try:
        with open(f"/proc/{me}/task/{me}/children") as handle:  # needs CONFIG_PROC_CHILDREN
            return [int(p) for p in handle.read().split()]
    except OSError:
        pass
    for pid in all_pids():
        fields = stat_fields(pid)
        if fields is not None and int(fields[1]) == me:  # field 4 of stat: the parent PID
            found.append(pid)
    return found


def all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 on (after the command name, which may hold spaces); None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def reap_nohang() -> tuple[list[tuple[int, int]], bool]:
    """Reap every child that has exited; returns ([(pid, status)], no_children_left)."""
    reaped = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped, True
        if pid == 0:
            return reaped, False
        reaped.append((pid, status))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", required=True, help="where to write the measurements")
    parser.add_argument("--orphan-wait", type=float, default=10.0,
                        help="seconds to wait for descendants after CMD exits, then SIGKILL (default: 10)")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    args = parser.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("no command given (use: --json OUT.json -- CMD ARGS...)")
    become_subreaper()

    started = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd)
    except OSError as exc:
        print(f"treecpu: cannot run {cmd[0]}: {exc}", file=sys.stderr)
        return 127

    def forward(signum, _frame):  # Ctrl-C / kill reach the command, which decides how to stop
        try:
            os.kill(proc.pid, signum)
        except ProcessLookupError:
            pass
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)

    status = None
    orphans_reaped = 0
    while status is None:  # block until CMD itself exits, reaping orphans as they come
        try:
            pid, st = os.waitpid(-1, 0)
        except ChildProcessError:  # cannot happen before CMD is reaped, but never spin
            break
        if pid == proc.pid:
            status = st
        else:
            orphans_reaped += 1
    wall = time.perf_counter() - started
    proc.returncode = 0  # reaped by hand above; keep Popen from waiting on it again

    deadline = time.monotonic() + args.orphan_wait
    done = False
    while not done and time.monotonic() < deadline:
        reaped, done = reap_nohang()
        orphans_reaped += len(reaped)
        if not done:
            time.sleep(0.02)
    orphans_killed = 0
    for _ in range(200):  # bounded: killing a child re-parents its own children to us; go again
        if done:
            break
        victims = my_children()
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
                orphans_killed += 1
            except ProcessLookupError:
                pass
        time.sleep(0.02)
        reaped, done = reap_nohang()
        orphans_reaped += len(reaped)
    tree_wall = time.perf_counter() - started

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if status is None:
        returncode = 1
    elif os.WIFSIGNALED(status):
        returncode = -os.WTERMSIG(status)
    else:
        returncode = os.WEXITSTATUS(status)
    result = {"wall_s": round(wall, 4), "user_s": round(usage.ru_utime, 4), "sys_s": round(usage.ru_stime, 4),
              "cpu_s": round(usage.ru_utime + usage.ru_stime, 4), "returncode": returncode,
              "tree_wall_s": round(tree_wall, 4), "orphans_reaped": orphans_reaped,
              "orphans_killed": orphans_killed, "all_reaped": done, "argv": cmd}
    with open(args.json, "w") as handle:
        json.dump(result, handle, indent=1)
        handle.write("\n")
    if not done:
        print("treecpu: some descendants could not be reaped", file=sys.stderr)
    return 128 - returncode if returncode < 0 else returncode


if __name__ == "__main__":
    sys.exit(main())
