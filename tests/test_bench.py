"""`imgfetch bench`: the classic rows beside the engine, the table and its legend, the advice, JSON and chart.

The advice is tested with made-up timings; a few small real runs check the wiring end to end.
"""
from __future__ import annotations

import json
import math
import os
import random
import re
import sys
import time

import pytest
from PIL import Image

from imgfetch.bench import bursts
from imgfetch.bench import plan as sweep
from imgfetch.bench.advice import advise
from imgfetch.bench.chart import draw_chart
from imgfetch.bench.classic import Box, Outcome, RunStats, download_image, run_stats
from imgfetch.bench.jsondoc import to_json
from imgfetch.bench.measure import run_bench
from imgfetch.bench.plan import CLASSIC, ENGINE, SEQUENTIAL, BenchReport, Row, count_hosts, plan_rows
from imgfetch.bench.settings import BenchSettings, default_worker_sweep
from imgfetch.bench.table import format_legend, format_report, format_table
from imgfetch.cli import main
from imgfetch.options import Options

HEADER = ["workers", "threads", "conc", "images", "images/s", "min-max", "speedup", "effic.", "first s", "failed",
          "notes"]


def runs(rates, pids=(101,)):
    """One-second runs that saved `rate` images each, spread over `pids`."""
    return [RunStats(seconds=1.0, images=rate, failures=0, bytes=rate * 10_000, first_s=0.2,
                     pid_counts={pid: rate // len(pids) for pid in pids}) for rate in rates]


def report_with(engine, *, seq=(7, 7, 8), classic=(20, 21, 19), defaults=(4, 128), repeat=3, per_host=None,
                hosts=1):
    """A report from made-up images/s: engine maps (workers, threads) to its runs' rates."""
    settings = BenchSettings(workers=(1, 2, 4), threads=(1, 16, 128, 256), repeat=repeat)
    cap = per_host * hosts if per_host else None
    rows = [Row(SEQUENTIAL, cap=cap, runs=runs(seq)),
            Row(CLASSIC, 3, 1, "fork", 1, cap=cap, runs=runs(classic, pids=(201, 202, 203)))]
    rows += [Row(ENGINE, w, t, "fork", is_default=(w, t) == defaults, cap=cap, runs=runs(rates, pids=tuple(range(w))))
             for (w, t), rates in engine.items()]
    return BenchReport(settings, rows, 2000, "the built-in server (log-normal latency, median 60 ms, sigma 1; "
                                             "2000 images)", hosts=hosts, options={"per_host": per_host, "rate": None})


def marked(report, advice):
    """The notes column of every engine row that has notes: {'4 x 128': 'tied, defaults', ...}."""
    table = format_table(report, advice).splitlines()
    at = table[2].index("notes")
    return {f"{row.workers} x {row.threads}": line[at:] for row, line in zip(report.rows, table[4:])
            if row.kind == ENGINE and line[at:]}


WHY = ("Why: the loop has 1 download in flight and the classic pool 3 (one per process, each idle while it waits on "
       "the network); imgfetch keeps {conc} in flight ({how}) and streams each image back as it is saved.")


# A sweep shaped like a 2-core machine's: threads matter far more than processes.
SWEEP = {(1, 1): [6, 6, 7], (2, 1): [13, 13, 14], (4, 1): [26, 27, 27],
         (1, 16): [95, 100, 104], (2, 16): [190, 200, 205], (4, 16): [350, 380, 390],
         (1, 128): [380, 400, 410], (2, 128): [560, 600, 610], (4, 128): [600, 640, 660],
         (1, 256): [420, 450, 470], (2, 256): [590, 610, 650], (4, 256): [560, 600, 640]}


def test_every_column_has_a_line_in_the_legend_and_the_numbers_agree():
    report = report_with(SWEEP)
    advice = advise(report)
    table = format_table(report, advice).splitlines()
    assert table[0].startswith("the built-in server") and table[1] == "each run: 0.3 s to start, then 1 s counted; 2-3 runs per row"
    header = table[2]
    assert [word for word in HEADER if word in header] == HEADER
    legend = format_legend(report).splitlines()
    for column in HEADER:
        assert any(line.startswith(column + " ") for line in legend), column
    rows = {line.split("  ")[0].strip(): line for line in table[4:6]}
    assert set(rows) == {"sequential requests.get loop", "ProcessPoolExecutor(3).map"}
    classic = rows["ProcessPoolExecutor(3).map"].split()
    assert classic[1:6] == ["3", "1", "3", "20", "20.0"]  # workers threads conc images images/s
    assert classic[6] == "19.0-21.0" and classic[7] == "2.9x" and classic[8] == "0.95"  # speedup 20/7, effic. /3
    defaults = next(line for line in table if "defaults" in line).split()
    assert defaults[2:6] == ["4", "128", "512", "640"] and defaults[7] == "600-660" and defaults[8] == "91.4x"


def test_sizes_within_noise_are_tied_and_none_is_crowned():
    report = report_with(SWEEP)
    advice = advise(report)
    # 4 x 128 has the highest median (640); 2 x 128, 2 x 256 and 4 x 256 overlap it.
    assert advice.best.short == "4 x 128" and not advice.verdict.crowned
    assert advice.lines[2:] == [
        "Within noise: 4 x 128, 2 x 128, 2 x 256 and 4 x 256 reached 600-640 images/s (within 5 % of the highest "
        "median, or within 10 % with overlapping min-max); this run cannot rank them, so none is crowned.",
        "The best, 4 x 128, is the most workers tried, but 2 x 128 is within noise of it: the curve has flattened, so "
        "larger sizes are unlikely to help.",
        "get's defaults (4 x 128, 640 images/s) are among the sizes this run cannot rank (the highest median).",
    ]
    assert advice.recommendation == ("recommendation: imgfetch get --workers 4 --threads 128 (640 images/s, the "
                                     "highest median of the 4 tied sizes). These are get's defaults: plain `imgfetch "
                                     "get` does the same.")
    # None is crowned, so no row is marked fastest or recommended.
    assert marked(report, advice) == {"2 x 128": "tied", "4 x 128": "tied, defaults", "2 x 256": "tied",
                                      "4 x 256": "tied"}


def test_a_clear_winner_is_named_without_a_noise_message():
    engine = {**SWEEP, (2, 128): [300, 310, 320], (2, 256): [320, 330, 335], (4, 256): [400, 410, 420]}
    report = report_with(engine)
    advice = advise(report)
    assert [r.short for r in advice.verdict.ties] == ["4 x 128"] and advice.verdict.crowned
    assert not any("Within noise" in line for line in advice.lines)
    assert advice.lines[0] == ("imgfetch at its best (4 x 128, 640 images/s) is 91x the sequential loop and 32.0x "
                               "ProcessPoolExecutor(3).map.")
    assert "get's defaults (4 x 128, 640 images/s) were the fastest, beyond noise of every other size." in advice.lines
    assert marked(report, advice) == {"4 x 128": "fastest, defaults, recommended"}


# The four shapes a sweep takes, as recorded runs; each test reads the advice and the notes a user sees.
RISING = {**SWEEP, (4, 256): [880, 900, 910]}
FLAT = {**SWEEP, (1, 128): [630, 640, 655], (2, 128): [635, 645, 660], (4, 128): [620, 640, 650],
        (1, 256): [630, 645, 650], (2, 256): [640, 650, 665], (4, 256): [645, 655, 670]}
FALLING = {**SWEEP, (2, 128): [900, 910, 920], (4, 128): [600, 640, 660], (2, 256): [700, 720, 730],
           (4, 256): [500, 520, 540]}
# The run: 1 x 128, 2 x 128 and 4 x 128 at 786, 893 and 795 images/s, and a noisy 4 x 256 on top.
NOISY = {**SWEEP, (1, 128): [770, 786, 800], (2, 128): [880, 893, 900], (4, 128): [760, 795, 820],
         (1, 256): [780, 800, 810], (2, 256): [800, 840, 850], (4, 256): [780, 950, 990]}


def test_rising_best_at_the_edge_says_try_larger_and_is_recommended():
    report = report_with(RISING)
    advice = advise(report)
    assert advice.lines == [
        "imgfetch at its best (4 x 256, 900 images/s) is 129x the sequential loop and 45.0x ProcessPoolExecutor(3).map.",
        WHY.format(conc=1024, how="4 processes x 256 threads"),
        "The best, 4 x 256, is the most workers and threads tried and the curve is still rising: 2 x 256 was 32 % "
        "slower and 4 x 128 was 29 % slower.",
        "Try larger: imgfetch bench --workers 4,8 --threads 256,512",
        "get's defaults (4 x 128, 640 images/s) are 29 % below the best.",
    ]
    assert advice.recommendation == ("recommendation: imgfetch get --workers 4 --threads 256 (900 images/s, the "
                                     "fastest; get's defaults were 29 % below the best).")
    assert marked(report, advice) == {"4 x 128": "defaults", "4 x 256": "fastest, recommended"}


def test_flat_best_at_the_edge_says_flattened_and_offers_nothing_larger():
    report = report_with(FLAT)
    advice = advise(report)
    assert advice.lines[2:] == [
        "Within noise: 4 x 256, 1 x 128, 2 x 128, 4 x 128, 1 x 256 and 2 x 256 reached 640-655 images/s (within 5 % of "
        "the highest median, or within 10 % with overlapping min-max); this run cannot rank them, so none is crowned.",
        "The best, 4 x 256, is the most workers and threads tried, but 2 x 256 and 4 x 128 are within noise of it: the "
        "curve has flattened, so larger sizes are unlikely to help.",
        "get's defaults (4 x 128, 640 images/s) are among the sizes this run cannot rank (2 % below the best).",
    ]
    assert advice.recommendation == ("recommendation: imgfetch get --workers 4 --threads 128 (640 images/s, one of "
                                     "the 6 tied sizes). These are get's defaults: plain `imgfetch get` does the same.")
    assert marked(report, advice) == {"1 x 128": "tied", "2 x 128": "tied", "4 x 128": "tied, defaults",
                                      "1 x 256": "tied", "2 x 256": "tied", "4 x 256": "tied"}


def test_falling_best_inside_the_sweep_has_no_edge_advice():
    report = report_with(FALLING)
    advice = advise(report)
    assert advice.lines == [
        "imgfetch at its best (2 x 128, 910 images/s) is 130x the sequential loop and 45.5x ProcessPoolExecutor(3).map.",
        WHY.format(conc=256, how="2 processes x 128 threads"),
        "get's defaults (4 x 128, 640 images/s) are 30 % below the best.",
    ]
    assert advice.recommendation == ("recommendation: imgfetch get --workers 2 --threads 128 (910 images/s, the "
                                     "fastest; get's defaults were 30 % below the best).")
    assert marked(report, advice) == {"2 x 128": "fastest, recommended", "4 x 128": "defaults"}


def test_noisy_best_at_the_edge_is_not_still_rising_when_a_smaller_size_ties_it():
    # Before, this run read "the curve has not flattened. Try larger" beside "none is crowned".
    report = report_with(NOISY)
    advice = advise(report)
    assert advice.lines[2:] == [
        "Noisy: the best's own runs ranged over 22 % of its median; the machine may be busy. Rerun with --repeat 5 or "
        "a longer --seconds.",
        "Within noise: 4 x 256 and 2 x 128 reached 893-950 images/s (within 5 % of the highest median, or within "
        "10 % with overlapping min-max); this run cannot rank them, so none is crowned.",
        "The best, 4 x 256, is the most workers and threads tried, but 2 x 128 is within noise of it: the curve has "
        "flattened, so larger sizes are unlikely to help.",
        "get's defaults (4 x 128, 795 images/s) are 16 % below the best, but their runs (760-820) overlap the best's: "
        "rerun with --repeat 5 to be sure.",
    ]
    assert advice.recommendation == ("recommendation: imgfetch get --workers 4 --threads 256 (950 images/s, the "
                                     "highest median of the 2 tied sizes; get's defaults were 16 % below the best).")
    assert marked(report, advice) == {"2 x 128": "tied", "4 x 128": "defaults", "4 x 256": "tied"}


def test_rising_along_one_axis_and_flat_along_the_other():
    report = report_with({**RISING, (4, 128): [860, 870, 900]})
    advice = advise(report)
    assert advice.lines[3:6] == [
        "The best, 4 x 256, is the most workers tried and the curve is still rising: 2 x 256 was 32 % slower.",
        "More threads than 128 did not help: 4 x 128 is within noise of the best.",
        "Try larger: imgfetch bench --workers 4,8 --threads 256",
    ]


def _random_sweep(rng):
    """Made-up rates of some shape (rising, flat, falling or none), with noise and 1-3 runs."""
    shape = rng.choice(["rising", "flat", "falling", "noise"])
    repeat = rng.choice([1, 2, 3])
    engine = {}
    for w in (1, 2, 4):
        for t in (1, 16, 128, 256):
            size = math.log2(w * t) + 1
            level = {"rising": 50 * size, "flat": 600 * min(size, 8) / 8, "falling": 600 - 30 * abs(size - 6),
                     "noise": 500}[shape]
            spread = rng.choice([0.01, 0.05, 0.15, 0.3])
            engine[(w, t)] = sorted(max(1, round(level * rng.uniform(1 - spread, 1 + spread)))
                                    for _ in range(repeat))
    return report_with(engine, seq=(7,) * repeat, classic=(20,) * repeat, repeat=repeat,
                       defaults=rng.choice([(4, 128), (2, 16), (1, 256)]))


def test_no_output_contradicts_itself():
    rng = random.Random(17)
    seen = set()
    for _ in range(600):
        report = _random_sweep(rng)
        advice = advise(report)
        text = "\n".join([*advice.lines, advice.recommendation])
        notes = " ".join(marked(report, advice).values())
        crowned = "none is crowned" not in text
        seen.add((crowned, "Try larger" in text, "unlikely to help" in text))
        assert crowned or not re.search(r"fastest|recommended", notes), text + "\n" + notes
        assert not ("unlikely to help" in text and "Try larger" in text), text
        # one fastest row when crowned, and it is the one the recommendation names when get's defaults are not
        assert notes.count("fastest") == (1 if crowned else 0)
        if "recommended" in notes:
            [row] = [r for r in report.engine if "recommended" in advice.verdict.marks(r)]
            assert f"imgfetch get --workers {row.workers} --threads {row.threads} " in advice.recommendation
    assert len(seen) >= 4  # crowned or not, rising or flattened: the sweeps reached each kind of message


def test_a_noisy_best_and_a_single_run_are_flagged():
    noisy = advise(report_with({**SWEEP, (4, 128): [450, 640, 700]}))
    assert any(line.startswith("Noisy: the best's own runs ranged over 39 % of its median") for line in noisy.lines)
    single = {key: rates[:1] for key, rates in SWEEP.items()}
    once = advise(report_with(single, seq=(7,), classic=(20,), repeat=1))
    assert any(line.startswith("With --repeat 1 there is no spread to judge the noise by") for line in once.lines)


def test_json_records_machine_date_settings_every_run_and_the_advice():
    report = report_with(SWEEP)
    report.date, report.wall_s = "2026-11-26T11:00:00+00:00", 58.2
    data = json.loads(json.dumps(to_json(report, advise(report))))
    assert data["schema"] == "imgfetch-bench/2" and data["date"] == "2026-11-26T11:00:00+00:00"
    machine = data["machine"]
    assert machine["usable_cpus"] >= 1 and re.match(r"\d+\.\d+", machine["python"])
    assert machine["versions"]["requests"] and machine["versions"]["pillow"] and machine["versions"]["imgfetch"]
    settings = data["settings"]
    assert settings["server"] == {"count": 2000, "latency_ms": 60.0, "latency_spread": 1.0}
    assert settings["threads"] == [1, 16, 128, 256] and settings["seconds"] == 1.0 and settings["ramp"] == 0.3 and settings["repeat"] == 3
    assert settings["classic_workers"] == [3] and settings["chunksize"] == 1
    rows = data["rows"]
    assert [r["kind"] for r in rows[:3]] == ["sequential", "classic", "engine"] and len(rows) == 14
    defaults = next(r for r in rows if r["is_default"])
    assert defaults["images_per_s"] == {"median": 640.0, "min": 600.0, "max": 660.0}
    assert [run["images"] for run in defaults["runs"]] == [600, 640, 660]
    assert defaults["runs"][0]["pid_counts"] == {"0": 150, "1": 150, "2": 150, "3": 150}
    assert defaults["speedup"] == pytest.approx(640 / 7) and defaults["efficiency"] == pytest.approx(640 / 7 / 512)
    assert data["advice"]["recommended"]["workers"] == 4 and data["advice"]["tied"][0] == "4 x 128"
    assert data["advice"]["crowned"] is False and data["advice"]["still_rising"] == []


def test_the_chart_is_a_png_of_the_size_asked_for(tmp_path):
    report = report_with(SWEEP)
    path = tmp_path / "chart.png"
    draw_chart(report, advise(report), path, (900, 600))
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (900, 600)
        colours = im.convert("RGB").getcolors(maxcolors=100_000)
    assert len(colours) > 50 and path.stat().st_size > 20_000


def test_download_image_writes_the_file_and_a_run_counts_only_its_box(server, tmp_path):
    outcome = download_image(server.image_urls()[0], str(tmp_path), timeout=5)
    assert outcome.ok and outcome.pid == os.getpid() and outcome.bytes == len(server.image_bytes(0))
    [saved] = tmp_path.iterdir()
    assert saved.read_bytes() == server.image_bytes(0)
    late = download_image(server.image_urls()[1], str(tmp_path), deadline=0.0)
    assert late.skipped and len(list(tmp_path.iterdir())) == 1
    done = [Outcome(1, True, 10, 100.5), Outcome(2, True, 10, 100.9), Outcome(1, False, 0, 100.95),
            Outcome(2, True, 10, 101.4)]  # the last ends after the box
    stats = run_stats(done + [Outcome(1, False, 0, 101.5, skipped=True)], Box(100.0, 100.0, 101.0), ran_out=False)
    assert (stats.seconds, stats.images, stats.failures, stats.first_s) == (1.0, 2, 1, 0.5)
    assert stats.pid_counts == {1: 2, 2: 1}
    ramped = run_stats(done, Box(100.0, 100.6, 101.0), ran_out=False)  # the first 0.6 s are not counted
    assert (ramped.images, ramped.failures, ramped.first_s) == (1, 1, 0.5) and ramped.seconds == pytest.approx(0.4)
    assert ramped.pid_counts == {1: 2, 2: 1}  # but every URL a process handled shows in its spread
    early = run_stats(done[:3], Box(100.0, 100.0, 101.0), ran_out=True)  # the list ran out inside the box
    assert early.seconds == pytest.approx(0.95) and early.images_per_s == pytest.approx(2 / 0.95)
    before = run_stats(done[:2], Box(100.0, 100.95, 101.0), ran_out=True)  # ... before the box even opened
    assert before.seconds == pytest.approx(0.9) and before.images == 2


def test_default_sweep_covers_gets_threads_and_up_to_twice_the_cpus():
    assert default_worker_sweep(2) == (1, 2, 4)
    assert default_worker_sweep(3) == (1, 2, 4, 6)
    assert default_worker_sweep(32) == (1, 2, 4, 8, 16, 32)
    settings = BenchSettings(workers=(1, 2), threads=(1, 8))
    assert BenchSettings().threads == (1, 16, 128, 256) and BenchSettings().classic_workers == (3,)
    rows = plan_rows(settings, Options(workers=4, start_method="fork"))
    assert [r.kind for r in rows[:2]] == [SEQUENTIAL, CLASSIC]
    [defaults] = [r for r in rows if r.is_default]  # get's defaults are a row even outside the sweep
    assert (defaults.workers, defaults.threads) == sweep.get_defaults()[:2] and len(rows) == 2 + 4 + 1


def test_per_host_caps_conc_and_the_numbers_and_words_built_on_it():
    report = report_with(SWEEP, per_host=8)
    advice = advise(report)
    table = format_table(report, advice).splitlines()
    defaults = next(line for line in table if "defaults" in line).split()
    # 4 x 128 has 512 download slots, but --per-host 8 on one host lets only 8 downloads be in flight.
    assert defaults[2:5] == ["4", "128", "8"] and defaults[8] == "91.4x" and defaults[9] == "11.43"  # 91.4 / 8
    assert advice.lines[1] == WHY.format(conc=8, how="--per-host 8 caps its 4 processes x 128 threads on 1 host")
    assert any(line.startswith("conc      downloads in flight at once: workers x threads, at most --per-host 8 x "
                               "1 host = 8") for line in format_legend(report).splitlines())
    data = to_json(report, advice)["rows"]
    row = next(r for r in data if r["is_default"])
    assert (row["slots"], row["concurrency"]) == (512, 8) and row["efficiency"] == pytest.approx(640 / 7 / 8)
    small = next(line for line in table if line.split()[2:4] == ["1", "1"]).split()
    assert small[4] == "1"  # fewer slots than the cap: the slots
    assert not any("Try larger" in line for line in advise(report_with(RISING, per_host=8)).lines)  # adds nothing
    report.options["rate"] = 5.0
    assert advise(report).lines[1] == WHY.format(conc=8, how="--per-host 8 caps its 4 processes x 128 threads on 1 "
                                                         "host; --rate 5 starts at most 5 a second per host")


def test_the_cap_is_per_host_times_the_hosts_in_the_list():
    urls = ["http://127.0.0.1:8000/a.jpg", "http://127.0.0.1:8000/b.jpg", "http://127.0.0.1:8001/c.jpg",
            "https://example.com/d.jpg", "https://EXAMPLE.com:443/e.jpg", "http://example.com/f.jpg"]
    assert count_hosts(urls) == 4
    rows = plan_rows(BenchSettings(workers=(1, 4), threads=(1, 128), classic_workers=(3,)),
                     Options(per_host=2, start_method="fork"), hosts=4)
    assert {(r.workers, r.threads): r.concurrency for r in rows if r.kind == ENGINE} == \
        {(1, 1): 1, (4, 1): 4, (1, 128): 8, (4, 128): 8, sweep.get_defaults()[:2]: 8}
    assert [r.workers for r in rows if r.kind == CLASSIC] == [2]


@pytest.fixture()
def small_defaults(monkeypatch):
    """get's defaults as a small row, whatever this machine's CPUs."""
    monkeypatch.setattr(sweep, "get_defaults", lambda: (2, 4, "fork"))


# What a run may take beyond its box: stopping its processes, and a download that started just before
# the box closed and hangs (the bench gives no download longer than the box: the engine's --max-time).
SLACK_S = 2.0


def test_a_hanging_url_cannot_hold_a_run(fresh_server, tmp_path, small_defaults, monkeypatch):
    monkeypatch.setattr(bursts, "BURSTS", 1)  # the bursts' note, capped like the runs: once, with a short cap
    monkeypatch.setattr(bursts, "BURST_MAX_TIME_S", 0.5)
    images = [f"{url}?latency_ms=20" for url in fresh_server.image_urls()[:24]]
    lines = images[:8]  # the warm-up's, then one URL in three hangs for 8 s or trickles a byte each 0.5 s
    for n, url in enumerate(images[8:]):
        lines.append(url)
        lines.append(fresh_server.url(f"/hang?seconds=8&n={n}") if n % 2 else
                     url.replace("/img/", "/drip/").replace("latency_ms=20", "interval=0.5"))
    listed = tmp_path / "urls.txt"
    listed.write_text("\n".join(lines) + "\n")
    settings = BenchSettings(urls=str(listed), workers=(1, 2), threads=(1, 4), classic_workers=(2,), repeat=2,
                             seconds=0.3, ramp=0.1, start_methods=("fork",))
    ticks = []
    started = time.monotonic()
    report = run_bench(settings, Options(progress=False, start_method="fork"), announce=lambda text: None,
                       on_progress=lambda text: ticks.append((time.monotonic(), text)))
    assert len(ticks) == 12  # 6 rows x 2 runs
    for (before, _), (after, text) in zip(ticks, ticks[1:]):  # each run, but the first (after the warm-up)
        box = 3 * 0.3 if text.startswith("sequential") else 0.1 + 0.3
        assert after - before <= box + SLACK_S, text
    burst_s = bursts.BURSTS * 2 * (bursts.BURST_MAX_TIME_S + SLACK_S)  # a warm and a fresh burst, each capped
    assert time.monotonic() - started <= 12 * (0.4 + SLACK_S) + 3 + burst_s  # the warm-up's box is 3 s
    hung = fresh_server.stats.snapshot()["by_path"]
    assert hung.get("/hang", 0) >= 6 and sum(n for path, n in hung.items() if path.startswith("/drip/")) >= 6
    assert all(row.images >= 1 for row in report.rows)


def test_bench_end_to_end_classic_rows_json_and_chart(tmp_path, capsys, small_defaults):
    report, chart = tmp_path / "bench.json", tmp_path / "chart.png"
    code = main(["bench", "--count", "60", "--latency-ms", "20", "--latency-spread", "0.5", "--workers", "1,2",
                 "--threads", "1,4", "--classic-workers", "2", "--chunksize", "2", "--repeat", "2", "--seconds",
                 "0.3", "--ramp", "0.1", "--start-methods", "fork", "--json", str(report), "--chart", str(chart),
                 "--chart-size", "900x600"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "benchmarking the built-in server (log-normal latency, median 20 ms, sigma 0.5; 60 images): " \
           "6 rows x 2 runs; each run lasts 0.4 s and counts the images saved in its last 0.3 s" in err
    table = out.splitlines()
    names = [line[:40].split("  ")[0].strip() for line in table[4:10]]
    assert names == ["sequential requests.get loop", "ProcessPoolExecutor(2).map, chunksize=2"] + \
        ["imgfetch (fork)"] * 4
    assert any(line.startswith("effic.    speedup / conc") for line in table)
    assert re.search(r"^  ProcessPoolExecutor\(2\)\.map, chunksize=2 +\d+: \d+", out, re.M)  # its PIDs
    assert "recommendation: imgfetch get --workers" in out
    assert re.search(r"^Bursts of 10 URLs \(5 each way, \d+ x \d+\): a warm imgfetch\.Downloader took \d+ ms a burst,\n"
                     r"  a fresh download\(\) \d+ ms \(\d+\.\dx\)", out, re.M)

    data = json.loads(report.read_text())
    assert len(data["bursts"]["warm_downloader_s"]) == len(data["bursts"]["fresh_download_s"]) == 5
    assert data["settings"]["url_count"] == 60 and data["settings"]["chunksize"] == 2
    seq, classic, *engine = data["rows"]
    assert len(seq["runs"]) == 2 and seq["images"] >= 1 and seq["failures"] == 0
    for run in classic["runs"]:
        pids = {int(pid) for pid in run["pid_counts"]}
        assert 1 <= len(pids) <= 2 and os.getpid() not in pids
        assert sum(run["pid_counts"].values()) >= run["images"] + run["failures"]  # the ramp too
    assert classic["images_per_s"]["median"] > seq["images_per_s"]["median"]
    assert [(r["workers"], r["threads"]) for r in engine] == [(1, 1), (2, 1), (1, 4), (2, 4)]
    assert [r["is_default"] for r in engine] == [False, False, False, True]
    assert engine[-1]["images_per_s"]["median"] > 2 * seq["images_per_s"]["median"]
    with Image.open(chart) as im:
        assert im.format == "PNG" and im.size == (900, 600)


def test_log_pids_prints_the_textbook_line_from_the_classic_workers(capsys, monkeypatch):
    monkeypatch.setattr(sweep, "get_defaults", lambda: (1, 2, "forkserver"))
    assert main(["bench", "--count", "20", "--latency-ms", "10", "--workers", "1", "--threads", "2", "--repeat", "1",
                 "--seconds", "0.2", "--ramp", "0.1", "--start-methods", "forkserver", "--log-pids", "-q"]) == 0
    err = capsys.readouterr().err
    textbook = {int(m) for m in re.findall(r"^\[Process ID\]:(\d+) Downloading\.\.$", err, re.M)}
    engine = re.findall(r"^\[Process ID\]:(\d+) Downloading " + re.escape("http://127.0.0.1") + r":\d+/img/", err, re.M)
    assert len(textbook) >= 2 and os.getpid() in textbook  # the sequential loop here, the pool's 3 processes
    assert engine and os.getpid() not in {int(pid) for pid in engine}


def test_a_url_list_warns_and_keeps_to_per_host(fresh_server, tmp_path, capsys, small_defaults):
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"{url}?latency_ms=30\n" for url in fresh_server.image_urls()))
    fresh_server.stats.reset()
    assert main(["bench", str(urls), "--limit", "30", "--per-host", "2", "--workers", "1,2", "--threads", "4",
                 "--repeat", "1", "--seconds", "0.3", "--ramp", "0.1", "--start-methods", "fork"]) == 0
    out, err = capsys.readouterr()
    assert "warning: every row and every run fetches the same URLs from the same servers again" in err
    assert "--per-host 2: the classic pool runs at most 2 processes" in err
    assert f"{urls} (30 URLs)\neach run: 0.1 s to start, then 0.3 s counted; 1 run per row" in out and "ProcessPoolExecutor(2).map" in out
    assert "--per-host 2: at most 2 downloads in flight (1 host in the list), whatever the workers x threads" in err
    engine = [line.split() for line in out.splitlines() if line.startswith("imgfetch (fork)")]
    assert [row[2:5] for row in engine] == [["1", "4", "2"], ["2", "4", "2"]]  # workers threads conc
    assert fresh_server.stats.snapshot()["max_in_flight"] <= 2


def test_keep_never_touches_what_is_already_in_the_folder(server, tmp_path, capsys, small_defaults):
    urls = tmp_path / "urls.txt"
    urls.write_text("\n".join(server.image_urls()[:12]) + "\n")
    keep = tmp_path / "kept"
    (keep / "sequential_w1_t1_run1").mkdir(parents=True)
    (keep / "sequential_w1_t1_run1" / "mine.jpg").write_bytes(b"precious")
    argv = ["bench", str(urls), "--workers", "2", "--threads", "4", "--repeat", "1", "--seconds", "0.2", "--ramp", "0",
            "--classic-workers", "2", "--start-methods", "fork", "--keep", str(keep), "-q"]
    assert main(argv) == 0
    assert (keep / "sequential_w1_t1_run1" / "mine.jpg").read_bytes() == b"precious"
    [run] = [p for p in keep.iterdir() if p.name.startswith("bench-")]
    assert sorted(p.name for p in run.iterdir()) == ["bursts", "classic_fork_w2_t1_run1", "engine_fork_w2_t4_run1",
                                                      "sequential_w1_t1_run1", "warmup"]
    assert len(list((run / "engine_fork_w2_t4_run1").glob("*.*"))) >= 2  # images and the manifest


def test_chart_without_matplotlib_is_one_line_before_any_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["bench", "--chart", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert err == "imgfetch: error: --chart needs matplotlib: pip install 'imgfetch[plot]'\n"


@pytest.mark.parametrize("argv, needle", [
    (["--workers", "1,x"], "--workers takes comma-separated whole numbers"),
    (["--workers", "0,2"], "--workers must be a whole number >= 1"),
    (["--threads", "-4"], "--threads must be a whole number >= 1"),
    (["--classic-workers", "0"], "--classic-workers must be a whole number >= 1"),
    (["--chunksize", "0"], "--chunksize must be a whole number >= 1"),
    (["--seconds", "0"], "--seconds must be between 0.05 and 3600"),
    (["--ramp", "-1"], "--ramp must be between 0 and 60"),
    (["--repeat", "0"], "--repeat must be a whole number >= 1"),
    (["--count", "-1"], "--count must be a whole number >= 1"),
    (["--latency-ms", "70000"], "--latency-ms must be between 0 and 60000"),
    (["--per-host", "0"], "--per-host must be a whole number >= 1"),
    (["--start-methods", "fork,threads"], "--start-methods must be one of fork, spawn, forkserver, got 'threads'"),
    (["--chart", "c.png", "--chart-size", "big"], "--chart-size takes WIDTHxHEIGHT"),
])
def test_bad_bench_options_exit_2_with_one_line(argv, needle, capsys, tmp_path):
    assert main(["bench", "-q", "--keep", str(tmp_path / "k"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "k").exists()


def test_the_whole_report_fits_a_screen():
    report = report_with(SWEEP)
    lines = format_report(report, advise(report)).splitlines()
    assert len(lines) <= 52 and max(map(len, lines)) <= 145


def test_a_third_run_only_for_rows_whose_two_runs_differ_by_over_10_percent():
    from imgfetch.bench.measure import steady

    assert steady(Row(ENGINE, runs=runs([100, 109])))
    assert not steady(Row(ENGINE, runs=runs([100, 115])))
    assert steady(Row(SEQUENTIAL, runs=runs([8, 10])))  # 2 images apart: counting, not noise
    assert not steady(Row(ENGINE, runs=runs([100])))


def test_noisy_defaults_below_the_tie_band_are_not_recommended_but_flagged():
    engine = {**SWEEP, (4, 128): [479, 597, 823], (2, 128): [644, 664, 684]}
    advice = advise(report_with(engine))
    assert advice.best.short == "2 x 128" and advice.recommended is advice.best
    assert "get's defaults (4 x 128, 597 images/s) are 10 % below the best, but their runs (479-823) overlap the " \
           "best's: rerun with --repeat 5 to be sure." in advice.lines
