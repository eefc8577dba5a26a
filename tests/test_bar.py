"""The bar in its harder moments: the last minute of slow URLs, a real terminal without a size, a log file."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap

from test_ux import BAR_ARGS, imgfetch, in_terminal, on_terminal, write_list

WAITING = re.compile(r"\[00:0\d<(?P<eta>00:0\d|\?), +(?P<rate>[\d.]+)(?P<unit>img/s|s/img), ok=3 [^\]]*, "
                     r"2 waiting, longest \d s\]")


def images_per_second(frame: re.Match) -> float:
    """tqdm shows a rate under 1 as seconds per image."""
    return float(frame["rate"]) if frame["unit"] == "img/s" else 1 / float(frame["rate"])


def test_the_bar_says_what_it_waits_on_with_an_eta_within_the_budget(server, tmp_path):
    hanging = [server.url("/hang?seconds=20"), server.url("/hang?seconds=20&b")]
    urls = write_list(tmp_path / "u.txt", [*server.image_urls()[:3], *hanging])
    _, screen = on_terminal(["get", str(urls), "-o", str(tmp_path / "o"), "--workers", "1", "--threads", "8",
                             "--max-time", "4.5", "--timeout", "10", "--retries", "0", "--start-method", "fork"])
    waiting = [m for m in map(WAITING.search, re.split(r"[\r\n]", screen)) if m]
    assert len(waiting) >= 2, screen  # '2 waiting, longest 3 s' from two seconds on, until --max-time ends them
    assert all(m["eta"] != "00:00" for m in waiting)  # not a stale ETA: the budgets bound it
    assert all(m["eta"] == "?" or int(m["eta"][-1]) <= 3 for m in waiting)  # they end by 4.5 s, so at most 3 s left
    rates = [images_per_second(m) for m in waiting]
    assert rates[-1] < rates[0], rates  # the rate sinks while nothing comes back, instead of freezing
    assert "5/5" in screen and "ok=3 failed=2" in screen and "waiting" not in screen.rsplit("\r", 1)[-1]


def test_a_terminal_of_zero_columns_gets_an_80_column_bar(server, tmp_path):
    urls = write_list(tmp_path / "u.txt", server.image_urls()[:6])
    screen = in_terminal(imgfetch("get", str(urls), "-o", str(tmp_path / "o"), *BAR_ARGS), size=(0, 0))
    frames = [f.rstrip() for f in re.split(r"[\r\n]", screen) if "img/s" in f]
    assert any(re.match(r"100%\|█+\| 6/6 ", frame) for frame in frames), screen  # a bar, not just the numbers
    assert max(map(len, frames)) <= 80


def test_the_library_draws_no_bar_into_a_log_file_unless_asked(server, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""\
        import sys
        import imgfetch

        if __name__ == "__main__":
            urls = {server.image_urls()[:4]!r}
            imgfetch.download(urls, "a", workers=1, threads=2, start_method="fork")
            print("-- asked --", file=sys.stderr, flush=True)
            imgfetch.download(urls, "b", workers=1, threads=2, start_method="fork", progress=True)
    """))
    with open(tmp_path / "job.log", "w") as log:
        subprocess.run([sys.executable, str(script)], cwd=tmp_path, stderr=log, check=True, timeout=60)
    by_default, asked = (tmp_path / "job.log").read_bytes().decode().split("-- asked --\n")
    assert by_default == ""  # no '\r' frames in the log
    assert "\r" in asked and "4/4" in asked and "ok=4" in asked
