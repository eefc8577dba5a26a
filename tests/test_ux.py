"""What a person at a terminal sees: the bar (once in a real pty, else in a stream that says it is a terminal),
the summary, help, errors that guide."""
from __future__ import annotations

import fcntl
import gc
import gzip
import io
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import textwrap
import time

import pytest

from conftest import tree
from imgfetch.cli import main
from imgfetch.cli.environment import Environment
from imgfetch.server import ImageServer

FAST_ARGS = ["--timeout", "0.5", "--deadline", "2", "--retries", "0", "--start-method", "fork"]
BAR_ARGS = ["--workers", "1", "--threads", "4", *FAST_ARGS]


def write_list(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def in_terminal(argv: list[str], stdin: bytes | None = None, seconds: float = 60,
                size: tuple[int, int] = (30, 120)) -> str:
    """Run argv with stdout and stderr on a pseudo-terminal of ``size`` (rows, columns); everything it drew."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    if stdin is not None:
        proc.stdin.write(stdin)
        proc.stdin.close()
    chunks, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every process holding the terminal has gone
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None and not select.select([master], [], [], 0.2)[0]:
            break
    proc.wait(timeout=10)
    os.close(master)
    return b"".join(chunks).decode("utf-8", "replace")


class Terminal(io.StringIO):
    """Standard error that says it is a terminal, and keeps what the bar drew (80 columns: it has no size)."""

    def isatty(self) -> bool:
        return True


def on_terminal(argv: list[str], stdin: bytes = b"") -> tuple[int, str]:
    """main(argv) in this process with stderr on a terminal: (exit status, everything drawn on stderr)."""
    screen = Terminal()
    status = main(argv, Environment(stdin=io.BytesIO(stdin), stdout=io.StringIO(), stderr=screen))
    return status, screen.getvalue()


def imgfetch(*args: str) -> list[str]:
    return [sys.executable, "-m", "imgfetch", *args]


def final_bar(screen: str) -> str:
    """The last state of the bar: the last carriage-return-separated frame that has a postfix."""
    frames = [f for f in re.split(r"[\r\n]", screen) if "ok=" in f]
    return frames[-1]


def test_bar_has_a_total_percentage_and_agrees_with_the_summary(tmp_path):
    with ImageServer(count=37, latency_ms=40) as server:
        urls = write_list(tmp_path / "u.txt", ["# a comment", *server.image_urls(), server.url("/status/404"),
                                               server.url("/status/404?b"), "not a url"])
        screen = in_terminal(imgfetch("get", str(urls), "-o", str(tmp_path / "o"), *BAR_ARGS))
    bar = final_bar(screen)
    assert "100%" in bar and "40/40" in bar  # the comment is not counted
    assert "ok=37 failed=2 invalid=1" in bar
    assert "ok 37, failed 2, invalid 1, duplicate 0;" in screen  # the summary says the same
    midway = [f for f in re.split(r"[\r\n]", screen) if re.search(r"\b[1-9]\d?%\|.*\| *\d+/40 \[00:0\d<00:0\d", f)]
    assert midway, screen  # while it runs: a percentage, the total and an ETA


def test_a_resume_counts_skipped_apart_and_the_bar_covers_the_downloads(server, tmp_path):
    urls = write_list(tmp_path / "u.txt", server.image_urls()[:30])
    out = tmp_path / "o"
    assert main(["get", str(urls), "-o", str(out), "-q", *FAST_ARGS]) == 0
    for path in sorted(p for p in out.iterdir() if p.suffix != ".jsonl")[:6]:
        path.unlink()
    status, screen = on_terminal(["get", str(urls), "-o", str(out), *BAR_ARGS])
    bar = final_bar(screen)
    assert status == 0 and "6/6" in bar and "100%" in bar and "ok=30 (24 earlier)" in bar


def test_gzip_and_stdin_lists_get_a_bar_too(server, tmp_path):
    listing = tmp_path / "u.txt.gz"
    listing.write_bytes(gzip.compress(("\n".join(server.image_urls()[:12]) + "\n").encode()))
    assert "12/12" in final_bar(on_terminal(["get", str(listing), "-o", str(tmp_path / "a"), *BAR_ARGS])[1])
    piped = gzip.compress(("\n".join(server.image_urls()[:9]) + "\n").encode())  # standard input is sniffed too
    status, screen = on_terminal(["get", "-", "-o", str(tmp_path / "b"), *BAR_ARGS], stdin=piped)
    bar = final_bar(screen)
    assert status == 0 and "9/9" in bar and "ok=9" in bar  # no total while reading; the finished bar shows it


def test_the_clock_moves_while_urls_hang(server, tmp_path):
    urls = write_list(tmp_path / "u.txt", [server.url("/hang"), server.url("/hang?2")])
    status, screen = on_terminal(["get", str(urls), "-o", str(tmp_path / "o"), "--workers", "1", "--threads", "2",
                                  "--timeout", "1.6", "--retries", "0", "--start-method", "fork"])
    assert status == 1
    assert re.search(r"0/2 \[00:01<", screen), screen  # redrawn at 0 done, a second in
    assert "ok=0 failed=2" in final_bar(screen)


def test_main_reads_and_writes_only_through_its_environment(server, tmp_path, capsys):
    env = Environment(stdin=io.BytesIO(("\n".join(server.image_urls()[:2]) + "\n").encode()), stdout=io.StringIO(),
                      stderr=io.StringIO())
    assert main(["get", "-", "-o", str(tmp_path / "o"), "--insecure", *FAST_ARGS], env) == 0
    err = env.stderr.getvalue()
    assert "imgfetch: warning: --insecure" in err and "done: ok 2, failed 0" in err  # log lines and the summary
    assert "\r" not in err  # not a terminal: no bar
    assert main([], env) == 0 and env.stdout.getvalue().startswith("usage: imgfetch")
    assert main(["get", "-", "-o", "o", "--wrokers", "2"], env) == 2
    assert env.stderr.getvalue().endswith("unrecognized option --wrokers; did you mean --workers?\n")
    assert capsys.readouterr() == ("", "")  # nothing went to the process's own streams


def test_no_bar_into_a_file_but_a_summary_with_reasons_manifest_and_retry(server, tmp_path, capsys):
    urls = write_list(tmp_path / "u.txt", [*server.image_urls()[:3], server.url("/status/404"),
                                           server.url("/status/404?b"), server.url("/status/500"), "ftp://x/y"])
    out = tmp_path / "o"
    assert main(["get", str(urls), "-o", str(out), *FAST_ARGS]) == 1
    err = capsys.readouterr().err
    assert "it/s" not in err and "img/s" not in err and "\r" not in err  # stderr is not a terminal here
    assert "ok 3, failed 3, invalid 1, duplicate 0;" in err
    assert "\n  2 × HTTP 404 Not Found\n  1 × HTTP 500 Internal Server Error\n" in err
    assert "1 × invalid: " in err
    assert f"manifest: {out / 'manifest.jsonl'}" in err
    assert "run the same command again to retry the 1 transient failure; 2 are permanent: " \
           "--retry-failed all retries them too" in err
    assert main(["get", str(urls), "-o", str(out), "--errors", str(tmp_path / "f.txt"), *FAST_ARGS]) == 1
    err = capsys.readouterr().err
    assert f"imgfetch get {tmp_path / 'f.txt'} -o {out}" in err
    assert "ok 3 (3 from earlier runs), failed 3 (2 not retried), invalid 1, duplicate 0;" in err


def test_quiet_prints_only_errors(server, tmp_path, capsys):
    urls = write_list(tmp_path / "u.txt", [server.image_urls()[0], server.url("/status/404")])
    assert main(["get", str(urls), "-o", str(tmp_path / "o"), "-q", *FAST_ARGS]) == 1
    assert capsys.readouterr() == ("", "")
    assert main(["get", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "o"), "-q"]) == 2
    assert "missing.txt" in capsys.readouterr().err


def test_an_interrupted_run_says_how_much_is_done_and_how_to_resume(tmp_path):
    with ImageServer(count=60, latency_ms=150) as server:
        urls = write_list(tmp_path / "u.txt", server.image_urls())
        out = tmp_path / "o"
        proc = subprocess.Popen(imgfetch("get", str(urls), "-o", str(out), "--workers", "1", "--threads", "2",
                                         "--start-method", "fork"), stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        deadline = time.monotonic() + 20
        while not (out / "manifest.jsonl").exists() or len((out / "manifest.jsonl").read_bytes().splitlines()) < 4:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    done = len((out / "manifest.jsonl").read_bytes().splitlines())
    assert f"interrupted: {done} of 60 URLs done (ok {done}) in " in err
    assert "run the same command again to resume: finished URLs are skipped" in err


def test_help_says_what_each_level_prints_and_ends_with_examples(capsys):
    for command in ("get", "bench", "serve"):
        assert main([command, "--help"]) == 0
        out = capsys.readouterr().out
        tail = out.rstrip().split("\n\nexamples:\n")[1].splitlines()
        assert 2 <= len(tail) <= 3 and all(line.strip().startswith(("imgfetch", "curl")) for line in tail)
        assert out.count("imgfetch " + command) >= 2
    assert main(["get", "--help"]) == 0
    out = capsys.readouterr().out
    assert "-q       errors only: no bar, no summary, no warnings" in out and "default  a progress bar" in out


def test_serve_offers_only_server_options(capsys):
    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--count" in out and "--faults" in out and "-v, --verbose" in out
    for foreign in ("--quiet", "Downloading", "--workers", "--out"):
        assert foreign not in out
    assert main(["serve", "-q"]) == 2
    assert "unrecognized option -q" in capsys.readouterr().err


def test_bare_imgfetch_prints_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: imgfetch") and "get" in out and "examples:" in out


@pytest.mark.parametrize("argv, message", [
    (["get", "u.txt", "-o", "o", "--wrokers", "3"], "imgfetch get: error: unrecognized option --wrokers; "
                                                   "did you mean --workers?"),
    (["get", "u.txt", "-o", "o", "--worker", "3"], "unrecognized option --worker; did you mean --workers?"),
    (["get", "u.txt", "-o", "o", "--time-out=3"], "unrecognized option --time-out; did you mean --timeout?"),
    (["gte", "u.txt"], "invalid choice: 'gte' (choose from 'get', 'bench', 'serve'); did you mean get?"),
    (["-v", "get", "u.txt", "-o", "o"], "-v goes after the command: imgfetch get -v ..."),
    (["get"], "the following arguments are required: URL, -o/--out (see: imgfetch get --help)"),
    (["get", "u.txt", "-o", "o", "-q", "-v"], "not allowed with argument -q/--quiet"),
])
def test_usage_errors_are_one_line_that_guides(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert tree(tmp_path) == set()


def test_out_that_is_a_file_is_refused_in_plain_words(server, tmp_path, capsys):
    urls = write_list(tmp_path / "u.txt", server.image_urls()[:1])
    (tmp_path / "taken").write_text("x")
    assert main(["get", str(urls), "-o", str(tmp_path / "taken"), "-q"]) == 2
    assert capsys.readouterr().err.strip() == f"imgfetch: error: {tmp_path / 'taken'}: is a file, not a folder"


def test_an_unusable_manifest_leaves_no_output_folder_behind(server, tmp_path, capsys):
    urls = write_list(tmp_path / "u.txt", server.image_urls()[:1])
    (tmp_path / "file").write_text("x")
    for flag, value in (("--manifest", "file/m.jsonl"), ("--errors", "file/failed.txt")):
        argv = ["get", str(urls), "-o", str(tmp_path / "new" / "out"), flag, str(tmp_path / value), "-q"]
        assert main(argv) == 2
        assert "cannot write" in capsys.readouterr().err
        assert tree(tmp_path) == {"u.txt", "file"}  # neither out nor its new parent is left
        gc.collect()  # and no file is left open: an unclosed one warns (an error here) when collected


def test_a_url_where_the_list_goes_says_how_to_pipe_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["get", "https://example.com/list.txt", "-o", "out dir"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("imgfetch: error: https://example.com/list.txt names a URL list, not an image; to download the "
                   "images it lists, pipe it in: curl -fsSL https://example.com/list.txt | imgfetch get - -o 'out dir'")
    assert tree(tmp_path) == set()


def test_a_script_without_the_main_guard_fails_with_one_line(server, tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(f"""\
        import imgfetch
        print("top level runs")
        imgfetch.download({server.image_urls()[:3]!r}, "out", workers=2, threads=2, progress=False)
    """))
    for method in ("forkserver", "spawn"):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=60, env=env, input="")
        assert done.returncode == 1
        assert done.stdout == "top level runs\n"  # once: no worker ran the script again
        [line] = done.stderr.splitlines()
        assert line.startswith(f"imgfetch: error: {script}:3 calls imgfetch outside `if __name__ == \"__main__\":`")
        assert not (tmp_path / "out").exists()
        script.write_text(script.read_text().replace("progress=False", f"progress=False, start_method={method!r}"))
    guarded = tmp_path / "guarded.py"
    guarded.write_text(textwrap.dedent(f"""\
        import imgfetch

        def main():
            print(len(imgfetch.download({server.image_urls()[:3]!r}, "out", workers=1, progress=False).ok))

        if __name__ == "__main__":
            main()
    """))
    done = subprocess.run([sys.executable, str(guarded)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "3\n", "")


def test_a_script_read_from_stdin_is_told_to_be_a_file(tmp_path):
    script = 'import imgfetch\nif __name__ == "__main__":\n    imgfetch.download(["http://127.0.0.1:9/a.jpg"], "out")\n'
    done = subprocess.run([sys.executable, "-"], input=script, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("imgfetch: error: the main script (<stdin>) is not a file") and "start_method=" in line


def test_workers_that_import_an_unguarded_script_exit_quietly(server, tmp_path):
    """Past the parent's check (here: the runner called directly), children never start a run of their own."""
    script = tmp_path / "direct.py"
    script.write_text(textwrap.dedent(f"""\
        from imgfetch.options import Options
        from imgfetch.engine.run import Run
        print("top level runs")
        list(Run({server.image_urls()[:3]!r}, "out", Options(workers=2, threads=2, progress=False)).results())
    """))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.count("Traceback") == 1 and "RuntimeError" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("imgfetch.errors.PoolKeepsDying: worker processes keep dying")
    assert 2 < done.stdout.count("top level runs") < 12  # the parent, then each worker, which exited at once
