"""What download() returns: input order, counts, reasons, a short repr, HTML, pandas, a contact sheet;
and signatures a notebook can complete, checked against the one Options definition."""
from __future__ import annotations

import dataclasses
import inspect
import os
import sys
from pathlib import Path

import pytest

from conftest import FAST
from imgfetch import Options, download, fetch, iter_download
from imgfetch.records import FetchResult
from imgfetch.report.results import Results

RUN = dict(workers=1, threads=4, start_method="fork", **FAST)


@pytest.fixture(scope="module")
def mixed(server, tmp_path_factory):
    """One run over good images, two 404s, a 500, an invalid line and a duplicate."""
    out = tmp_path_factory.mktemp("results") / "out"
    images = server.image_urls()[:6]
    urls = [images[0], server.url("/status/404"), *images[1:4], server.url("/status/500"), "not a url",
            server.url("/status/404?again"), images[4], images[0], images[5]]
    return urls, out, download(urls, out, **RUN)


def test_records_come_back_in_input_order_with_ok_and_failed(mixed):
    urls, out, results = mixed
    assert isinstance(results, Results) and isinstance(results, list)
    assert [r.line for r in results] == list(range(1, len(urls) + 1))
    assert [r.line for r in results.ok] == [1, 3, 4, 5, 9, 11]
    assert [r.line for r in results.failed] == [2, 6, 7, 8]  # failed and invalid: what needs a look
    assert results.counts == {"ok": 6, "failed": 3, "invalid": 1, "duplicate": 1}
    assert results.bytes == sum(r.bytes for r in results.ok) > 0
    assert results[9].status == "duplicate"


def test_summary_groups_the_failure_reasons(mixed):
    text = mixed[2].summary()
    assert text.splitlines()[0].startswith("ok 6, failed 3, invalid 1, duplicate 1;")
    assert "  2 × HTTP 404 Not Found" in text
    assert "  1 × HTTP 500 Internal Server Error" in text
    assert "invalid: " in text


def test_reprs_are_short_and_records_know_their_absolute_path(mixed):
    _urls, out, results = mixed
    ok = results[0]
    assert repr(ok).startswith("<FetchResult ok line 1 '") and ok.sha256 not in repr(ok) and len(repr(ok)) < 100
    assert repr(results[1]) == f"<FetchResult failed line 2 {results[1].url!r}: HTTP 404 Not Found>"
    assert os.path.isabs(ok.abspath) and Path(ok.abspath).read_bytes() == (out / ok.path).read_bytes()
    assert results[1].abspath is None
    assert repr(results).startswith("<Results of 11 URLs: ok 6, failed 3, invalid 1, duplicate 1;")
    assert "abspath" not in (out / "manifest.jsonl").read_text()  # the manifest stays relative and movable


def test_html_table_shows_counts_failures_and_rows_escaped(tmp_path):
    evil = FetchResult(url="http://h.example.com/<script>alert(1)</script>", key="0" * 32, line=1, status="failed",
                       error="HTTP 404 <b>Not</b> Found")
    good = FetchResult(url="http://h.example.com/a.jpg", key="1" * 32, line=2, status="ok", path="a&b.jpg", bytes=2048,
                       format="JPEG", width=4, height=3)
    html = Results([good, evil], tmp_path)._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html and "<b>Not</b>" not in html
    assert "ok 1, failed 1" in html and "HTTP 404 &lt;b&gt;Not&lt;/b&gt; Found" in html
    assert "a&amp;b.jpg" in html and "2.0 kB" in html and "JPEG 4&times;3" in html
    assert html.index("a&amp;b.jpg") > html.index("&lt;script&gt;")  # rows in input order


def test_to_pandas_and_its_message_without_pandas(mixed, monkeypatch):
    pd = pytest.importorskip("pandas")
    df = mixed[2].to_pandas()
    assert isinstance(df, pd.DataFrame) and len(df) == 11
    assert list(df.columns[:4]) == ["line", "status", "path", "error"] and "abspath" in df.columns
    assert df["status"].value_counts()["ok"] == 6
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'imgfetch\[notebook\]'"):
        mixed[2].to_pandas()


def test_show_outside_a_notebook_returns_the_sheet_and_saves_a_png(mixed, tmp_path):
    from PIL import Image

    from imgfetch import show
    from imgfetch.report.contact import CELL_BACKGROUND, FAILED_BACKGROUND, GAP

    results = mixed[2]
    sheet = results.show(n=4, path=tmp_path / "sheet.png")
    with Image.open(tmp_path / "sheet.png") as saved:
        assert sheet.size == saved.size and sheet.width > 4 * 160
    with_failed = show(results, n=4, failed=True, columns=4)
    assert with_failed.getpixel((GAP + 160 + GAP + 2, GAP + 2)) == FAILED_BACKGROUND  # line 2: the 404, a blank
    first = sheet.crop((GAP, GAP, GAP + 160, GAP + 160))
    assert len(first.getcolors(1 << 16)) > 50 and first.getpixel((80, 80)) != CELL_BACKGROUND  # a real thumbnail


RUN_ONLY = ("keep_records", "exit_on_second_signal", "progress_file")  # download()'s own, for a command-line tool


def test_signatures_are_the_options_fields_with_their_defaults():
    fields = {f.name: f for f in dataclasses.fields(Options)}

    def expected(name):  # a computed default (default_factory) is None in the signature
        f = fields[name]
        return None if f.default is dataclasses.MISSING else f.default

    for function in (download, iter_download, fetch):
        params = {name: p for name, p in inspect.signature(function).parameters.items()
                  if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("options", *RUN_ONLY)}
        if function is not fetch:
            assert set(params) == set(fields), function.__name__
        else:  # fetch takes only what one URL in this process uses
            assert set(params) <= set(fields) and {"timeout", "retries", "verify", "naming"} <= set(params)
            assert not {"workers", "threads", "manifest", "errors", "per_host", "executor"} & set(params)
        for name, param in params.items():
            assert param.default == expected(name), f"{function.__name__}({name}=...)"
            assert param.annotation is not inspect.Parameter.empty, name


def test_options_object_and_keywords_combine(server, tmp_path):
    base = Options(threads=2, retries=0, timeout=0.5, progress=False, start_method="fork", workers=1)
    results = download(server.image_urls()[:2], tmp_path / "o", options=base, naming="index")
    assert [r.path for r in results] == ["000000001.jpg", "000000002.png"]


def test_bad_options_are_value_errors_in_the_librarys_words(tmp_path):
    with pytest.raises(ValueError, match=r"^threads must be a whole number >= 1, got 0$"):
        download(["http://127.0.0.1:9/a.jpg"], tmp_path / "o", threads=0)
    with pytest.raises(ValueError, match=r"^insecure and ca_bundle contradict each other"):
        iter_download(["http://127.0.0.1:9/a.jpg"], tmp_path / "o", insecure=True, ca_bundle="/etc/hostname")
    assert not (tmp_path / "o").exists()


def test_one_url_string_is_one_url_and_a_path_stays_a_path(server, tmp_path):
    url = server.image_urls()[0]
    [record] = download(url, tmp_path / "one", **RUN)
    assert record.status == "ok" and record.line == 1
    listing = tmp_path / "list.txt"
    listing.write_text(url + "\n")
    assert [r.status for r in download(Path(listing), tmp_path / "two", **RUN)] == ["ok"]
    assert [r.status for r in download(str(listing), tmp_path / "three", **RUN)] == ["ok"]


def test_fetch_gives_the_absolute_path(server, tmp_path):
    record = fetch(server.image_urls()[0], tmp_path / "f", timeout=2)
    assert record.status == "ok" and record.abspath == os.path.abspath(tmp_path / "f" / record.path)


def test_iter_download_stays_in_completion_order(server, tmp_path):
    lines = [r.line for r in iter_download([server.url("/hang"), *server.image_urls()[1:4]], tmp_path / "o", **RUN)]
    assert sorted(lines) == [1, 2, 3, 4] and lines[-1] == 1  # the hanging first URL times out last
