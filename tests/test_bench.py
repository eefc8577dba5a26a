"""`imgfetch bench` end to end against the built-in server."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from imgfetch.bench import format_table, to_json
from imgfetch.cli import main
from imgfetch.options import Options
from imgfetch.sweep import BenchReport, BenchSettings, ConfigResult, default_worker_sweep


def test_bench_table_json_chart_and_pids(tmp_path, capsys):
    report, chart = tmp_path / "bench.json", tmp_path / "chart.png"
    code = main(["bench", "--count", "24", "--latency-ms", "50", "--workers", "1,2,4", "--repeat", "2",
                 "--start-methods", "fork", "--json", str(report), "--chart", str(chart),
                 "--chart-size", "900x600", "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "benchmarking 24 URLs: sequential + 3 pooled configurations, 2 runs each = 192 downloads" in err
    rows = [line.split() for line in out.splitlines() if line.startswith(("sequential", "pooled ("))]
    assert [r[0] for r in rows] == ["sequential", "pooled", "pooled", "pooled"]
    assert [int(r[2]) for r in rows[1:]] == [1, 2, 4]  # workers column
    assert "recommendation: --workers" in out

    data = json.loads(report.read_text())
    assert data["machine"]["usable_cpus"] >= 1 and data["settings"]["url_count"] == 24
    configs = data["configurations"]
    seq = configs[0]
    assert seq["mode"] == "sequential" and len(seq["times_s"]) == 2
    for config, row in zip(configs, rows):
        assert config["speedup"] == pytest.approx(seq["median_s"] / config["median_s"])
        assert float(row[-4].rstrip("x")) == pytest.approx(config["speedup"], abs=0.01)  # the table agrees
        assert config["failures"] == 0
    for config in configs[1:]:
        assert sum(config["pid_counts"].values()) == 24
        assert len(config["pid_counts"]) <= config["workers"]
        assert config["efficiency"] == pytest.approx(config["speedup"] / config["concurrency"])
    assert configs[3]["workers"] == 4

    with Image.open(chart) as im:
        assert im.format == "PNG" and im.size == (900, 600)
    assert tmp_path.joinpath("chart.png").stat().st_size > 5000


def test_bench_log_pids_prints_the_classic_line(capsys):
    assert main(["bench", "--count", "6", "--latency-ms", "0", "--workers", "2", "--repeat", "1",
                 "--start-methods", "fork", "--log-pids", "-q"]) == 0
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if l.startswith("[Process ID]:") and " Downloading http://127.0.0.1:" in l]
    assert len(lines) >= 12  # sequential and pooled runs both log every URL


@pytest.mark.parametrize("argv, needle", [
    (["--workers", "1,x"], "--workers takes comma-separated whole numbers"),
    (["--workers", "0,2"], "--workers sizes must be >= 1"),
    (["--threads", "-4"], "--threads sizes must be >= 1"),
    (["--repeat", "0"], "--repeat must be >= 1"),
    (["--count", "-1"], "--count must be >= 1"),
    (["--start-methods", "fork,threads"], "--start-methods: unknown start method threads"),
    (["--chart-size", "big"], "--chart-size takes WIDTHxHEIGHT"),
])
def test_bad_bench_options_exit_2_with_one_line(argv, needle, capsys, tmp_path):
    assert main(["bench", "-q", "--keep", str(tmp_path / "k"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "k").exists()


def test_default_sweep_is_powers_of_two_up_to_4x_cpus():
    assert default_worker_sweep(2) == (1, 2, 4, 8)
    assert default_worker_sweep(16) == (1, 2, 4, 8, 16, 32)


def test_bench_on_a_url_list_with_limit(server, tmp_path, capsys):
    urls = tmp_path / "urls.txt"
    urls.write_text("\n".join(server.image_urls()[:30]) + "\n")
    keep = tmp_path / "kept"
    assert main(["bench", str(urls), "--limit", "5", "--workers", "1,2", "--repeat", "1", "--start-methods", "fork",
                 "--keep", str(keep), "-q"]) == 0
    out, err = capsys.readouterr()
    assert "benchmarking 5 URLs: sequential + 2 pooled configurations, 1 runs each = 15 downloads" in err
    assert sum(line.startswith(("sequential", "pooled (")) for line in out.splitlines()) == 3
    [run] = keep.iterdir()  # one folder of its own per bench run
    kept = sorted(p.name for p in run.iterdir())
    assert "sequential_run1" in kept and len(kept) == 4  # warm-up, sequential and two pooled runs


def report_with(seq_times, pooled) -> BenchReport:
    """A report from given timings: (workers, threads, times, images) per pooled configuration."""
    settings = BenchSettings(workers=(1,), repeat=len(seq_times))
    sequential = ConfigResult("sequential", 1, 1, None, times=list(seq_times), images=24, bytes=2_400_000)
    configs = [ConfigResult("pooled", w, t, "fork", times=list(times), images=images, bytes=images * 100_000)
               for w, t, times, images in pooled]
    return BenchReport(settings, 24, 20.0, sequential, configs)


def test_speedup_efficiency_and_table_from_given_timings():
    report = report_with([4.0, 3.0, 5.0], [(1, 1, [4.4, 4.0, 4.2], 24), (2, 1, [2.0, 2.2, 1.9], 24),
                                          (4, 1, [1.0, 1.1, 0.9], 24), (8, 1, [0.9, 0.95, 1.0], 24),
                                          (2, 4, [1.25, 1.0, 1.5], 24)])
    rows = {(row["workers"], row["threads"]): row
            for row in to_json(report, Options(workers=8, threads=4))["configurations"][1:]}
    assert rows[4, 1]["speedup"] == pytest.approx(4.0) and rows[4, 1]["efficiency"] == pytest.approx(1.0)
    assert rows[2, 1]["speedup"] == pytest.approx(2.0) and rows[8, 1]["efficiency"] == pytest.approx(4.0 / 0.95 / 8)
    assert rows[2, 4]["speedup"] == pytest.approx(3.2) and rows[2, 4]["efficiency"] == pytest.approx(0.4)
    assert rows[1, 1]["images_per_s"] == pytest.approx(24 / 4.2) and rows[4, 1]["mb_per_s"] == pytest.approx(2.4)
    table = format_table(report).splitlines()
    assert table[2].split()[:4] == ["sequential", "1", "1", "1"] and "1.00x" in table[2]
    assert "4.00 (3.00-5.00)" in table[2]
    assert table[5].split()[2] == "4" and " 4.00x " in table[5] and "1.00" in table[5].split()
    # 8 workers are 5 % faster than 4: within 10 %, so the smaller pool is recommended.
    assert (report.recommendation().workers, report.recommendation().threads) == (4, 1)


def test_bench_keep_never_touches_what_is_already_in_the_folder(tmp_path, capsys):
    keep = tmp_path / "kept"
    (keep / "sequential_run1").mkdir(parents=True)
    (keep / "sequential_run1" / "mine.jpg").write_bytes(b"precious")
    (keep / "notes.txt").write_text("mine")
    argv = ["bench", "--count", "4", "--latency-ms", "0", "--workers", "1", "--repeat", "1",
            "--start-methods", "fork", "--keep", str(keep), "-q"]
    assert main(argv) == 0 and main(argv) == 0
    assert (keep / "sequential_run1" / "mine.jpg").read_bytes() == b"precious"
    assert (keep / "notes.txt").read_text() == "mine"
    runs = sorted(p for p in keep.iterdir() if p.name.startswith("bench-"))
    assert len(runs) == 2  # one new folder per run, the first one kept
    for run in runs:
        assert sorted(p.name for p in run.iterdir()) == ["pooled_fork_w1_t1_run1", "sequential_run1", "warmup"]
        assert len(list((run / "sequential_run1").glob("*.*"))) == 4
    assert "keeping every run's downloads under" in capsys.readouterr().err


def test_bench_limit_applies_to_the_built_in_server(capsys):
    assert main(["bench", "--count", "40", "--limit", "6", "--latency-ms", "0", "--workers", "1", "--repeat", "1",
                 "--start-methods", "fork", "-q"]) == 0
    assert "benchmarking 6 URLs: sequential + 1 pooled configurations" in capsys.readouterr().err
