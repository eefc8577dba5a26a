"""imgfetch.sources under size limits: an enormous line or record is one invalid entry, never held whole."""
from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from imgfetch.sources import Entry, iter_entries, readers
from imgfetch.urls import normalize_url
from test_sources import summary, write


def peak_bytes(entries_of) -> tuple[list[Entry], int]:
    tracemalloc.start()
    try:
        entries = list(entries_of())
        return entries, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("final_newline", [True, False])
def test_an_enormous_txt_line_is_invalid_and_never_held_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            final_newline: bool) -> None:
    monkeypatch.setattr(readers, "MAX_URL_CHARS", 1000)
    path = tmp_path / "l.txt"
    with path.open("wb") as f:
        f.write(b"http://example.com/1\n# " + b"c" * 3_000_000 + b"\nhttp://example.com/" + b"a" * 3_000_000)
        f.write(b"\nhttp://example.com/2\nhttp://example.com/" + "é".encode() * 1_000_000)
        f.write(b"\n" if final_newline else b"")
    entries, peak = peak_bytes(lambda: iter_entries(path))
    assert summary(entries) == [
        (1, "http://example.com/1", None),                    # (2: a huge comment, skipped)
        (3, None, "line too long: 3,000,019 characters (limit 1,000)"),
        (4, "http://example.com/2", None),
        (5, None, "line too long: 1,000,019 characters (limit 1,000)"),
    ]
    assert entries[1].raw == "http://example.com/" + "a" * 181 and len(entries[3].raw) == 200
    assert peak < 500_000  # lines of 3 MB and 2 MB


def test_a_url_just_over_the_cap_is_invalid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "MAX_URL_CHARS", 100)
    url = "http://example.com/" + "x" * 81
    path = write(tmp_path / "l.txt", f"{url}\r\n  {url}x  \n".encode())
    assert summary(iter_entries(path)) == [(1, normalize_url(url), None),
                                           (2, None, "line too long: 105 characters (limit 100)")]
    rows = [{"url": url}, {"url": url + "x"}]
    assert summary(iter_entries(rows)) == [(1, url, None), (2, None, "URL too long: 101 characters (limit 100)")]


def test_a_huge_csv_field_makes_only_its_record_invalid(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    with path.open("wb") as f:
        f.write(b"url,caption\nhttp://example.com/1,short\n")
        f.write(b'http://example.com/2,"' + b"w " * 1_500_000 + b'"\n')          # 3 MB on one line
        f.write(b"http://example.com/3," + b"y" * 200_000 + b"\n")              # over csv's own field limit
        f.write(b'http://example.com/4,"two\nlines"\nhttp://example.com/5,z\n')
        f.write(b'http://example.com/6,"' + b'"" quoted\n' * 20_000 + b'end",x\n')  # 200 KB over many lines
        f.write(b'http://example.com/7,"a ""b"""\n')
    entries, peak = peak_bytes(lambda: iter_entries(path, keep_columns=("caption",)))
    assert summary(entries) == [
        (1, "http://example.com/1", None),
        (2, None, "record too long: 3,000,023 characters (limit 131,072)"),
        (3, None, "record too long: 200,021 characters (limit 131,072)"),
        (4, "http://example.com/4", None),
        (5, "http://example.com/5", None),
        (6, None, "record too long: 200,028 characters (limit 131,072)"),
        (7, "http://example.com/7", None),  # the quotes of record 6 were followed to its end
    ]
    assert entries[1].raw.startswith("http://example.com/2,") and len(entries[1].raw) == 200
    assert entries[3].columns == {"caption": "two\nlines"} and entries[6].columns == {"caption": 'a "b"'}
    assert peak < 2_000_000


def test_csv_and_jsonl_memory_stays_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "MAX_RECORD_CHARS", 10_000)
    big = "q" * 4_000_000
    csv_path = write(tmp_path / "l.tsv", f"url\tnote\nhttp://example.com/1\t{big}\nhttp://example.com/2\tn\n".encode())
    jsonl_path = write(tmp_path / "l.jsonl", (json.dumps({"url": "http://example.com/1", "note": big}) + "\n"
                                              + json.dumps({"url": "http://example.com/" + "u" * 70_000}) + "\n"
                                              + '{"url": "http://example.com/2"}').encode())
    del big
    for path, too_long in ((csv_path, "record too long: 4,000,021 characters (limit 10,000)"),
                           (jsonl_path, "line too long: 4,000,043 characters (limit 10,000)")):
        entries, peak = peak_bytes(lambda: iter_entries(path))
        assert (entries[0].line, entries[0].error) == (1, too_long), path
        assert entries[-1].url == "http://example.com/2" and peak < 500_000, (path, peak)
    assert summary(iter_entries(jsonl_path))[1] == (2, None, "line too long: 70,030 characters (limit 10,000)")


def test_an_oversized_csv_row_does_not_end_the_run(server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from imgfetch.cli import main

    urls = server.image_urls()[:2]
    path = tmp_path / "l.csv"
    path.write_text(f"url,caption\n{urls[0]},a\n{urls[1]},\"{'z' * 2_000_000}\"\n{urls[1]},b\n")
    code = main(["get", str(path), "-o", str(tmp_path / "out"), "-q", "--workers", "1", "--start-method", "fork"])
    assert code == 1, capsys.readouterr().err  # one invalid record, not a failed run (2)
    records = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert sorted((r["line"], r["status"]) for r in records) == [(1, "ok"), (2, "invalid"), (3, "ok")]
