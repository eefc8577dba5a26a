"""Helpers shared by the benchmarks: servers (the built-in `imgfetch serve` and nginx, both on 127.0.0.1
with an ephemeral port), process-tree CPU measurement through treecpu.py, output counting and a
description of the machine.

The scripts import their sibling modules by name: `python benchmarks/X.py` puts benchmarks/ first on
sys.path. imgfetch is imported as installed (`pip install -e .` in the checkout, or PYTHONPATH).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# imgfetch.server.FORMATS's order: the built-in server's and the corpus's image i is i.<EXTS[i % 4]>. A copy, so
# that benchlib imports no imgfetch (memory.py and commits.py measure other checkouts through PYTHONPATH).
EXTS = ("jpg", "png", "webp", "gif")
PY = sys.executable
ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
MIME_TYPES = "/etc/nginx/mime.types"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def stop(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    """Terminate a process we started, then kill it if it does not go within `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def start_server(count: int, latency_ms: float | None = None, *extra: str,
                 ready_timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    """`python -m imgfetch serve`; returns (process, base URL) once it prints its address."""
    argv = [PY, "-m", "imgfetch", "serve", "--count", str(count)]
    if latency_ms is not None:
        argv += ["--latency-ms", str(latency_ms)]
    argv += list(extra)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    # "serving N images on http://127.0.0.1:PORT (list: ...); Ctrl-C stops"
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(ready_timeout):
            stop(proc)
            raise RuntimeError(f"imgfetch serve printed nothing in {ready_timeout:g} s")
    line = proc.stdout.readline()
    if " on " not in line:
        stop(proc)
        raise RuntimeError(f"unexpected first line from imgfetch serve: {line!r}")
    return proc, line.split(" on ", 1)[1].split()[0]


def nginx_binary() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def start_nginx(work: Path, server_block: str, *, modules: tuple[str, ...] = (),
                http_extra: str = "") -> tuple[subprocess.Popen, str] | None:
    """nginx in the foreground, one worker, access log off; `server_block` may use {port}.

    Returns (process, base URL), or None when nginx is not installed. Raises if it does not start.
    """
    nginx = nginx_binary()
    if not nginx:
        return None
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    loads = "".join(f"load_module {m};\n" for m in modules)
    conf = work / "nginx.conf"
    conf.write_text(f"""{loads}
worker_processes 1; daemon off; pid {work}/nginx.pid; error_log {work}/error.log warn;
worker_rlimit_nofile 16384;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off; keepalive_requests 1000000; keepalive_timeout 120s;
  client_body_temp_path {work}; proxy_temp_path {work}; fastcgi_temp_path {work};
  uwsgi_temp_path {work}; scgi_temp_path {work};
  {http_extra}
  server {{ listen 127.0.0.1:{port} backlog=4096; {server_block.replace("{port}", str(port))} }}
}}
""")
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(work)], stderr=subprocess.PIPE, text=True)
    if not wait_port(port, 5.0):
        stop(proc)
        err = proc.stderr.read() if proc.stderr else ""
        log = (work / "error.log").read_text() if (work / "error.log").exists() else ""
        raise RuntimeError(f"nginx did not start: {err.strip()[-500:]} {log.strip()[-500:]}")
    return proc, f"http://127.0.0.1:{port}"


def run_measured(argv: list[str], json_path: Path, log_path: Path, timeout: float,
                 env: dict[str, str] | None = None) -> dict:
    """Run argv under treecpu.py (CPU of the whole process tree); stdout and stderr go to log_path.

    Returns treecpu's JSON, plus timed_out. The run is bounded: after `timeout` seconds its
    process group gets SIGTERM, then SIGKILL.
    """
    wrapped = [PY, str(HERE / "treecpu.py"), "--json", str(json_path), "--", *argv]
    started = time.perf_counter()
    timed_out = False
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(wrapped, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop_group(proc)
        except BaseException:  # Ctrl-C or SIGTERM of the benchmark: the run is in its own session
            _stop_group(proc)
            raise
    outer = time.perf_counter() - started
    try:
        result = json.loads(json_path.read_text())
    except (OSError, ValueError):
        result = {"wall_s": outer, "user_s": float("nan"), "sys_s": float("nan"), "cpu_s": float("nan"),
                  "returncode": proc.returncode}
    result["timed_out"] = timed_out
    return result


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group of proc (its own session), then SIGKILL it if it lingers."""
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def machine_cpu_s() -> float:
    """CPU seconds the whole machine (every core) has spent so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def server_cpu_s(procs: list) -> float:
    """CPU seconds of the given processes and their children (nginx's workers), from /proc."""
    total = 0.0
    for proc in procs:
        if proc is None or proc.poll() is not None:
            continue
        try:
            kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        except OSError:
            kids = []
        for pid in [str(proc.pid), *kids]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return total


def output_files(out: Path, exclude: tuple[str, ...] = ("manifest.jsonl",)) -> list[Path]:
    return [p for p in out.rglob("*") if p.is_file() and p.name not in exclude]


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def log_tail(path: Path, chars: int = 300) -> str:
    try:
        return path.read_text(errors="replace").strip()[-chars:]
    except OSError:
        return ""


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def machine_info() -> dict:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    commit = _first_line(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(HERE.parent), "status", "--porcelain", "--", "imgfetch"],
                           capture_output=True, text=True).stdout.strip()
    return {
        "cpus": os.cpu_count(), "usable_cpus": usable,
        "python": sys.version.split()[0], "platform": sys.platform,
        "imgfetch": version("imgfetch"), "requests": version("requests"), "urllib3": version("urllib3"),
        "Pillow": version("Pillow"),
        "curl": _first_line(["curl", "--version"]).split(" (")[0],
        "aria2c": _first_line(["aria2c", "--version"]),
        "nginx": _first_line([nginx_binary() or "nginx", "-v"]),
        "git": commit + (" (imgfetch/ has uncommitted changes)" if dirty else ""),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
