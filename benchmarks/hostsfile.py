"""Host names for a benchmark: a marked block appended to /etc/hosts, and taken out again exactly.

    with HostsBlock([("127.0.101.1", "img-000.webshape.test"), ...]):
        ...  # every resolver that reads /etc/hosts (glibc, c-ares, Go) now knows the names

The block is appended (the bytes before it are never rewritten, so a program reading the file
meanwhile always sees the lines it had) and removed on exit, Ctrl-C included: the file is cut back
to its original length when nothing else changed it, which restores it byte for byte. If another
program changed the file meanwhile, only our block is taken out. A block left behind by a run that
was killed with SIGKILL is removed by the next run, once its process is gone, or with
`python benchmarks/hostsfile.py --clean`.
"""
from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

HOSTS = Path("/etc/hosts")
_BEGIN = "# >>> imgfetch benchmark block, pid {pid}: removed again when that process ends\n"
_END = "# <<< imgfetch benchmark block, pid {pid}\n"
_BLOCK = re.compile(rb"# >>> imgfetch benchmark block, pid (\d+):[^\n]*\n.*?# <<< imgfetch benchmark block, pid \1\n",
                    re.S)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _rewrite(path: Path, data: bytes) -> None:
    """Replace the file's content in place: /etc/hosts is often a bind mount, which rename cannot replace."""
    with open(path, "r+b") as handle:
        handle.write(data)
        handle.truncate()


def remove_stale(path: Path = HOSTS) -> int:
    """Take out blocks whose process is gone (a run killed with SIGKILL); returns how many."""
    data = path.read_bytes()
    stale = [m for m in _BLOCK.finditer(data) if not _alive(int(m.group(1)))]
    if stale:
        for m in reversed(stale):
            data = data[:m.start()] + data[m.end():]
        _rewrite(path, data)
    return len(stale)


class HostsBlock:
    """Context manager: the (address, name) pairs are in `path` while it is open."""

    def __init__(self, entries: list[tuple[str, str]], path: Path = HOSTS) -> None:
        self.entries, self.path = entries, path
        self.original: bytes | None = None
        self.written: bytes | None = None

    def __enter__(self) -> HostsBlock:
        stale = remove_stale(self.path)
        if stale:
            print(f"removed {stale} stale benchmark block(s) from {self.path}", flush=True)
        self.original = self.path.read_bytes()
        pid = os.getpid()
        block = ("" if self.original.endswith(b"\n") or not self.original else "\n") + _BEGIN.format(pid=pid)
        block += "".join(f"{address} {name}\n" for address, name in self.entries) + _END.format(pid=pid)
        with open(self.path, "ab") as handle:
            handle.write(block.encode())
        self.written = self.original + block.encode()
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Restore the file; safe to call twice. A second Ctrl-C waits until it is done."""
        if self.original is None:
            return
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
        try:
            self._restore()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def _restore(self) -> None:
        current = self.path.read_bytes()
        if current == self.written:
            os.truncate(self.path, len(self.original))  # the exact original bytes
        else:  # someone else changed the file meanwhile: keep their change, take out our block only
            mine = [m for m in _BLOCK.finditer(current) if int(m.group(1)) == os.getpid()]
            for m in reversed(mine):
                current = current[:m.start()] + current[m.end():]
            _rewrite(self.path, current)
        self.original = None


if __name__ == "__main__":
    if sys.argv[1:] != ["--clean"]:
        sys.exit("usage: python benchmarks/hostsfile.py --clean   (removes blocks of benchmark runs that are gone)")
    print(f"removed {remove_stale()} stale block(s) from {HOSTS}")
