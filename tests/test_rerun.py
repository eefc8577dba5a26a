"""Re-runs: which earlier failures are fetched again (--retry-failed), and results that stay true after a resume."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import imgfetch
from conftest import FAST, read_manifest
from imgfetch import download
from imgfetch.cli import main

RUN = dict(workers=1, threads=8, start_method="fork", **dict(FAST, retries=0))
CLI = ["--workers", "1", "--threads", "8", "--timeout", "0.6", "--retries", "0", "--start-method", "fork"]
PERMANENT = ("/status/404", "/status/410", "/html-as-jpeg")   # HTTP 404, HTTP 410, not an image
TRANSIENT = ("/status/500", "/hang")                        # HTTP 500, a timeout (the hang ends by itself)


def write_list(server, path):
    """Three images, three permanent failures and two transient ones, one URL a line."""
    hang = server.url("/hang?seconds=1")
    urls = [*server.image_urls()[:3], *(server.url(p) for p in PERMANENT), server.url("/status/500"), hang]
    path.write_text("\n".join(urls) + "\n", encoding="utf-8")
    return path


def requested(server):
    return {path: n for path, n in server.stats.snapshot()["by_path"].items() if n}


@pytest.fixture()
def first_run(fresh_server, tmp_path, capsys):
    """One run over the list; the server's counters are zeroed after it."""
    urls, out = write_list(fresh_server, tmp_path / "urls.txt"), tmp_path / "out"
    assert main(["get", str(urls), "-o", str(out), *CLI]) == 1
    err = capsys.readouterr().err
    assert "run the same command again to retry the 2 transient failures; 3 are permanent: " \
           "--retry-failed all retries them too" in err
    fresh_server.stats.reset()
    return urls, out


def test_a_rerun_fetches_only_the_transient_failures_and_says_so(fresh_server, first_run, capsys):
    urls, out = first_run
    assert main(["get", str(urls), "-o", str(out), *CLI]) == 1
    assert requested(fresh_server) == {"/status/500": 1, "/hang": 1}  # not the 404, 410, HTML, nor the images
    err = capsys.readouterr().err
    assert "done: ok 3 (3 from earlier runs), failed 5 (3 not retried), invalid 0, duplicate 0;" in err
    assert "run the same command again to retry the 2 transient failures; 3 are permanent: " \
           "--retry-failed all retries them too" in err
    records = imgfetch.read_manifest(out)
    assert [(r["status"], r["skipped"]) for r in records] == [("ok", True)] * 3 + [("failed", False)] * 5
    assert [r["line"] for r in records] == list(range(1, 9))
    # The permanent failures were not written again: one manifest line each, from the first run.
    lines = read_manifest(out / "manifest.jsonl")
    assert len(lines) == 8 + 3 + 2 and sum(r["url"].endswith("/status/404") for r in lines) == 1


def test_retry_failed_all_fetches_the_permanent_failures_too(fresh_server, first_run, capsys):
    urls, out = first_run
    assert main(["get", str(urls), "-o", str(out), "--retry-failed", "all", *CLI]) == 1
    assert requested(fresh_server) == {path: 1 for path in (*PERMANENT, *TRANSIENT)}
    assert "run the same command again to retry the 5 failed URLs: done URLs are skipped" in capsys.readouterr().err


def test_retry_failed_none_fetches_nothing_and_still_has_a_record_per_url(fresh_server, first_run, capsys):
    urls, out = first_run
    errors = out.parent / "failed.txt"
    assert main(["get", str(urls), "-o", str(out), "--retry-failed", "none", "--errors", str(errors), *CLI]) == 1
    assert fresh_server.stats.requests == 0
    assert len([u for u in errors.read_text().splitlines() if not u.startswith("#")]) == 5  # the failures not retried are still this run's failures
    err = capsys.readouterr().err
    assert "done: ok 3 (3 from earlier runs), failed 5 (5 not retried), invalid 0, duplicate 0;" in err
    assert "--retry-failed none: no failure is retried; transient retries 2 of the 5, all retries every one" in err
    assert "HTTP 404 Not Found" in err  # the failures are still listed, with their reasons


def test_results_agree_with_their_counts_after_a_resume(fresh_server, tmp_path):
    out = tmp_path / "out"
    urls = [*fresh_server.image_urls()[:4], fresh_server.url("/status/404"), fresh_server.url("/status/503"),
            "not a url", fresh_server.image_urls()[0]]
    download(urls, out, **RUN)
    fresh_server.stats.reset()
    results = download(urls, out, **RUN)
    assert fresh_server.stats.snapshot()["by_path"] == {"/status/503": 1}
    for status in ("ok", "failed", "invalid", "duplicate"):
        assert results.counts[status] == sum(r.status == status for r in results), status
    assert results.counts == {"ok": 4, "failed": 2, "invalid": 1, "duplicate": 1}
    assert len(results.ok) == results.counts["ok"] and len(results.failed) == 3  # failed and invalid
    assert [r.line for r in results.skipped] == [1, 2, 3, 4, 5]  # the images, and the 404 not retried
    assert repr(results).startswith("<Results of 8 URLs: ok 4 (4 from earlier runs), failed 2 (1 not retried), "
                                    "invalid 1, duplicate 1>")
    assert results.summary().startswith("ok 4 (4 from earlier runs), failed 2 (1 not retried), invalid 1, ")
    assert repr(results[0]).startswith("<FetchResult ok (skipped) line 1 '")
    not_retried = results[4]
    assert (not_retried.status, not_retried.error, not_retried.http_status) == ("failed", "HTTP 404 Not Found", 404)
    assert all(r.abspath for r in results.ok)


def test_read_manifest_gives_ok_for_urls_an_older_version_recorded_as_skipped(fresh_server, tmp_path):
    out = tmp_path / "out"
    download(fresh_server.image_urls()[:3], out, **RUN)
    manifest = out / "manifest.jsonl"
    older = []  # as imgfetch wrote a resume before: status "skipped", no skipped field
    for record in read_manifest(manifest):
        record.pop("skipped")
        older.append({**record, "status": "skipped"})
    manifest.write_text("".join(json.dumps(r) + "\n" for r in older), encoding="utf-8")
    assert [(r["status"], r["skipped"]) for r in imgfetch.read_manifest(out)] == [("ok", True)] * 3
    fresh_server.stats.reset()
    again = download(fresh_server.image_urls()[:3], out, **RUN)
    assert fresh_server.stats.requests == 0 and [r.status for r in again] == ["ok"] * 3


def test_to_pandas_keeps_whole_numbers_whole(fresh_server, tmp_path):
    pd = pytest.importorskip("pandas")
    results = download([fresh_server.image_urls()[0], fresh_server.url("/status/404")], tmp_path / "out", **RUN)
    df = results.to_pandas()
    for name in ("width", "height", "bytes", "line", "http_status"):
        assert df[name].dtype == pd.Int64Dtype(), name
    assert df["width"].tolist()[0] == results[0].width and pd.isna(df["width"].tolist()[1])
    assert str(results[0].width) in df.to_string() and f"{results[0].width}.0" not in df.to_string()


def test_csv_line_is_the_data_row_number(fresh_server, tmp_path):
    """The README says so: 1 is the first row under the header; a quoted field over two lines is one row."""
    images = fresh_server.image_urls()[:3]
    listing = tmp_path / "list.csv"
    listing.write_text(f'url,caption\n{images[0]},one\n{images[1]},"two\nlines"\n{images[2]},three\n',
                       encoding="utf-8")
    results = download(listing, tmp_path / "out", keep_columns="caption", **RUN)
    assert [(r.line, r.columns["caption"]) for r in results] == [(1, "one"), (2, "two\nlines"), (3, "three")]
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8").split())
    assert "in a CSV or TSV file, the data row number (1 is the row under the header" in readme


@pytest.mark.parametrize("kind, status, permanent", [
    ("http", 404, True), ("http", 410, True), ("http", 403, True), ("http", 408, False), ("http", 429, False),
    ("http", 500, False), ("http", 503, False), ("not_image", 200, True), ("corrupt", 200, True),
    ("too_large", 200, True), ("format", 200, True), ("redirect", 302, True), ("invalid", None, True),
    ("timeout", None, False), ("connection", None, False), ("dns", None, False), ("tls", None, False),
    ("proxy", None, False), ("protocol", 200, False), ("empty", 200, False), ("disk", 200, False),
    ("disk_full", 200, False), ("crashed", None, False), ("internal", None, False), (None, None, False),
])
def test_which_failures_are_permanent(kind, status, permanent):
    from imgfetch.records import permanent_failure

    assert permanent_failure(kind, status) is permanent
