"""imgfetch.sources: URL lists read as text, CSV, TSV, JSON Lines (gzipped or not), stdin or an iterable.

Size limits: test_sources_limits.py; one URL's normalising and masking: test_urls.py.
"""
from __future__ import annotations

import gzip
import io
import itertools
import sys
from pathlib import Path

import pytest

from imgfetch.errors import InputError
from imgfetch.sources import INPUT_FORMATS, Entry, iter_entries, open_entries


def write(path: Path, data: bytes, compress: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def summary(entries) -> list[tuple[int, str | None, str | None]]:
    return [(e.line, e.url, e.error) for e in entries]


class FakeStdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


# --------------------------------------------------------------------------- txt

TXT = (
    b"\xef\xbb\xbfhttp://example.com/a.jpg\r\n"   # 1: BOM + CRLF
    b"\r\n"                                       # 2: blank
    b"   # a comment\n"                           # 3: comment
    b"  https://EXAMPLE.org/b.png  \n"            # 4: trimmed
    b"http://example.com/\xff\xfe.jpg\n"          # 5: undecodable
    b"ftp://example.com/c\n"                      # 6: invalid scheme
    b"\t\n"                                       # 7: blank
    b"http://example.com/last"                    # 8: no final newline
)
TXT_EXPECTED = [
    (1, "http://example.com/a.jpg", None),
    (4, "https://example.org/b.png", None),
    (5, None, "undecodable bytes (not UTF-8)"),
    (6, None, "unsupported scheme 'ftp' (only http and https)"),
    (8, "http://example.com/last", None),
]


def test_txt_lines_comments_blank_crlf_bom_undecodable(tmp_path: Path) -> None:
    entries = list(iter_entries(write(tmp_path / "list.txt", TXT)))
    assert summary(entries) == TXT_EXPECTED
    assert entries[1].raw == "https://EXAMPLE.org/b.png"
    assert entries[2].raw == "http://example.com/\ufffd\ufffd.jpg"
    assert all(e.columns == {} for e in entries)
    assert isinstance(entries[0], Entry)


def test_txt_accepts_str_and_pathlike_and_unknown_extension(tmp_path: Path) -> None:
    path = write(tmp_path / "urls.list", TXT)
    assert summary(iter_entries(str(path))) == TXT_EXPECTED
    assert summary(iter_entries(path)) == TXT_EXPECTED


def test_empty_txt_file(tmp_path: Path) -> None:
    assert list(iter_entries(write(tmp_path / "e.txt", b""))) == []


def test_keep_columns_with_txt_is_a_value_error(tmp_path: Path) -> None:
    path = write(tmp_path / "list.txt", TXT)
    with pytest.raises(ValueError, match="--keep-columns and --caption-column need a CSV, TSV, JSON Lines or parquet list"):
        open_entries(path, keep_columns=("title",))


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", FakeStdin(TXT))
    assert summary(iter_entries("-")) == TXT_EXPECTED


def test_stdin_gzip_detected_and_format_override(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b'{"url": "http://example.com/1"}\n{"url": 5}\n'
    monkeypatch.setattr(sys, "stdin", FakeStdin(gzip.compress(data)))
    assert summary(iter_entries("-", input_format="jsonl")) == [
        (1, "http://example.com/1", None), (2, None, "no 'url' key")]


def test_stdin_is_not_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeStdin(b"http://example.com/\n")
    monkeypatch.setattr(sys, "stdin", fake)
    with open_entries("-") as entries:
        assert len(list(entries)) == 1
    assert not fake.buffer.closed


# --------------------------------------------------------------------------- csv / tsv

CSV = (
    "\ufeffid,URL_unused,url,title\r\n"
    "1,x,http://example.com/a.jpg,First\r\n"
    '2,x,"http://example.com/b.jpg","multi\r\nline title"\r\n'
    "3,x,,Empty\r\n"
    "\r\n"
    "5,x,notaurl,Bad\r\n"
    "6,x,http://example.org/c.jpg\r\n"          # short row: missing title
).encode("utf-8")


def test_csv_url_column_keep_columns_quoted_newline(tmp_path: Path) -> None:
    entries = list(iter_entries(write(tmp_path / "list.csv", CSV), keep_columns=("title", "id")))
    assert summary(entries) == [
        (1, "http://example.com/a.jpg", None),
        (2, "http://example.com/b.jpg", None),
        (3, None, "empty URL"),
        (5, None, "not a URL"),
        (6, "http://example.org/c.jpg", None),
    ]
    assert entries[0].columns == {"title": "First", "id": "1"}
    assert entries[1].columns == {"title": "multi\r\nline title", "id": "2"}
    assert entries[4].columns == {"title": "", "id": "6"}
    assert entries[3].raw == "notaurl"


def test_csv_custom_url_column_and_case_insensitive_match(tmp_path: Path) -> None:
    path = write(tmp_path / "l.csv", b"Name,Image Link\nx,http://example.com/1\n")
    assert summary(iter_entries(path, url_column="image link")) == [
        (1, "http://example.com/1", None)]


def test_csv_missing_url_column(tmp_path: Path) -> None:
    path = write(tmp_path / "list.csv", b"a,b\n1,2\n")
    with pytest.raises(InputError) as info:
        open_entries(path)
    assert str(info.value) == f"{path}: no column 'url' in the header (columns: a, b)"


def test_csv_missing_keep_column(tmp_path: Path) -> None:
    path = write(tmp_path / "list.csv", b"url,b\nhttp://example.com/,2\n")
    with pytest.raises(InputError, match="no column 'title' in the header"):
        open_entries(path, keep_columns=("title",))


def test_csv_empty_file_has_no_header(tmp_path: Path) -> None:
    path = write(tmp_path / "list.csv", b"")
    with pytest.raises(InputError, match="no header row"):
        open_entries(path)


def test_csv_undecodable_row_is_invalid_only_for_that_row(tmp_path: Path) -> None:
    data = (b"url,title\nhttp://example.com/\xe9.jpg,x\n"
            b"http://example.com/ok,caf\xe9\nhttp://example.com/2,y\n")
    entries = list(iter_entries(write(tmp_path / "l.csv", data), keep_columns=("title",)))
    assert summary(entries) == [
        (1, None, "undecodable bytes (not UTF-8)"),
        (2, None, "undecodable bytes (not UTF-8)"),
        (3, "http://example.com/2", None),
    ]
    assert entries[0].raw == "http://example.com/\ufffd.jpg"
    assert entries[1].columns == {"title": "caf\ufffd"}


def test_tsv(tmp_path: Path) -> None:
    data = b"title\turl\nA b\thttp://example.com/a b.jpg\nC\t\n"
    entries = list(iter_entries(write(tmp_path / "l.tsv", data), keep_columns=("title",)))
    assert summary(entries) == [(1, "http://example.com/a%20b.jpg", None), (2, None, "empty URL")]
    assert entries[0].columns == {"title": "A b"}


# --------------------------------------------------------------------------- jsonl

JSONL = (
    b'{"url": "http://example.com/1", "title": "One", "tags": ["a"], "n": 3}\n'
    b"\n"
    b"{broken\n"
    b"[1, 2]\n"
    b'{"link": "http://example.com/x"}\n'
    b'{"url": null}\n'
    b'{"url": "http://example.com/\xff"}\n'
    b'  {"url": "javascript:alert(1)"}  \r\n'
)


def test_jsonl_broken_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "l.jsonl", JSONL)
    entries = list(iter_entries(path, keep_columns=("title", "tags", "n")))
    assert summary(entries) == [
        (1, "http://example.com/1", None),
        (3, None, "not valid JSON"),
        (4, None, "not a JSON object"),
        (5, None, "no 'url' key"),
        (6, None, "no 'url' key"),
        (7, None, "undecodable bytes (not UTF-8)"),
        (8, None, "unsupported scheme 'javascript' (only http and https)"),
    ]
    assert entries[0].columns == {"title": "One", "tags": '["a"]', "n": "3"}
    assert entries[1].raw == "{broken"
    assert entries[3].columns == {"title": "", "tags": "", "n": ""}


def test_jsonl_custom_key_and_ndjson_extension(tmp_path: Path) -> None:
    path = write(tmp_path / "l.ndjson", b'{"src": "http://example.com/1"}\n')
    assert summary(iter_entries(path, url_key="src")) == [(1, "http://example.com/1", None)]


# --------------------------------------------------------------------------- gzip, formats

@pytest.mark.parametrize("name, data, keep", [
    ("list.txt.gz", b"http://example.com/1\n# c\nhttp://example.com/2\n", ()),
    ("list.csv.gz", b"url,t\nhttp://example.com/1,a\nhttp://example.com/2,b\n", ("t",)),
    ("list.tsv.gz", b"url\tt\nhttp://example.com/1\ta\nhttp://example.com/2\tb\n", ("t",)),
    ("list.jsonl.gz", b'{"url": "http://example.com/1", "t": "a"}\n'
                      b'{"url": "http://example.com/2", "t": "b"}\n', ("t",)),
    ("list.ndjson.gz", b'{"url": "http://example.com/1"}\n{"url": "http://example.com/2"}\n', ()),
])
def test_gzip_variants(tmp_path: Path, name: str, data: bytes, keep: tuple[str, ...]) -> None:
    entries = list(iter_entries(write(tmp_path / name, data, compress=True), keep_columns=keep))
    assert [e.url for e in entries] == ["http://example.com/1", "http://example.com/2"]


def test_gzip_detected_by_magic_bytes(tmp_path: Path) -> None:
    path = write(tmp_path / "list.csv", b"url\nhttp://example.com/1\n", compress=True)
    assert summary(iter_entries(path)) == [(1, "http://example.com/1", None)]


def test_gz_name_without_gzip_content_is_read_as_text(tmp_path: Path) -> None:
    path = write(tmp_path / "list.txt.gz", b"http://example.com/1\n")
    assert [e.url for e in iter_entries(path)] == ["http://example.com/1"]


def test_corrupt_gzip(tmp_path: Path) -> None:
    path = write(tmp_path / "list.txt.gz", gzip.compress(b"http://example.com/\n" * 100)[:30])
    with pytest.raises(InputError, match=r"list\.txt\.gz: not a valid gzip file"):
        open_entries(path)
    path = write(tmp_path / "bad.gz", b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(InputError, match="not a valid gzip file"):
        open_entries(path)


@pytest.mark.parametrize("fmt, data, expected", [
    ("csv", b"url\nhttp://example.com/1\n", [(1, "http://example.com/1", None)]),
    ("tsv", b"x\turl\n1\thttp://example.com/1\n", [(1, "http://example.com/1", None)]),
    ("jsonl", b'{"url": "http://example.com/1"}\n', [(1, "http://example.com/1", None)]),
    ("txt", b"url\nhttp://example.com/1\n",
     [(1, None, "not a URL"), (2, "http://example.com/1", None)]),
    ("CSV", b"url\nhttp://example.com/1\n", [(1, "http://example.com/1", None)]),
])
def test_input_format_overrides_extension(tmp_path: Path, fmt: str, data: bytes, expected) -> None:
    path = write(tmp_path / "list.data", data)
    assert summary(iter_entries(path, input_format=fmt)) == expected


def test_unknown_input_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="^--input-format must be one of txt, csv, tsv, jsonl, parquet$"):
        open_entries(write(tmp_path / "l.txt", b""), input_format="xml")
    assert INPUT_FORMATS == ("txt", "csv", "tsv", "jsonl", "parquet")


# --------------------------------------------------------------------------- run-level errors

def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.txt"
    with pytest.raises(InputError) as info:
        open_entries(path)
    assert str(info.value) == f"{path}: no such file"


def test_a_folder_without_lists(tmp_path: Path) -> None:
    (tmp_path / ".hidden.txt").write_text("http://example.com/a.jpg\n")
    (tmp_path / "notes.md").write_text("http://example.com/a.jpg\n")
    with pytest.raises(InputError, match="a folder without URL lists"):
        open_entries(tmp_path)


def test_unreadable_file_reported_in_one_line(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from imgfetch.sources import streams

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(streams, "open", refuse, raising=False)
    path = tmp_path / "secret.txt"
    with pytest.raises(InputError) as info:
        open_entries(path)
    assert str(info.value) == f"{path}: permission denied"


def test_gzip_truncated_after_the_first_block(tmp_path: Path) -> None:
    lines = b"".join(b"http://example.com/%d.jpg\n" % i for i in range(200_000))
    path = write(tmp_path / "big.txt.gz", gzip.compress(lines)[:-5000])
    with open_entries(path) as entries:             # the head is fine
        assert next(entries).url == "http://example.com/0.jpg"
        with pytest.raises(InputError, match=r"big\.txt\.gz: not a valid gzip file"):
            for _ in entries:
                pass


@pytest.mark.parametrize("compress", [False, True])
def test_binary_file(tmp_path: Path, compress: bool) -> None:
    path = write(tmp_path / "photo.txt", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(100), compress)
    with pytest.raises(InputError) as info:
        open_entries(path)
    assert str(info.value) == f"{path}: not a text file (binary data)"


def test_utf16_file(tmp_path: Path) -> None:
    path = write(tmp_path / "l.txt", "http://example.com/\n".encode("utf-16"))
    with pytest.raises(InputError, match="UTF-16"):
        open_entries(path)


def test_checks_are_eager_in_open_entries_and_lazy_in_iter_entries(tmp_path: Path) -> None:
    path = tmp_path / "missing.csv"
    gen = iter_entries(path)          # nothing happens yet
    with pytest.raises(InputError, match="no such file"):
        next(gen)
    with pytest.raises(InputError):
        open_entries(path)


def test_open_entries_closes_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "l.txt", b"http://example.com/1\nhttp://example.com/2\n")
    entries = open_entries(path)
    assert next(entries).url == "http://example.com/1"
    entries.close()
    with pytest.raises(StopIteration):
        next(entries)


# --------------------------------------------------------------------------- iterables, laziness

def test_iterable_of_str() -> None:
    items = ["http://example.com/1", "", "  # comment", " HTTP://Example.com:80/2#x ", "nope"]
    assert summary(iter_entries(items)) == [
        (1, "http://example.com/1", None),
        (4, "http://example.com/2", None),
        (5, None, "not a URL"),
    ]


def test_iterable_of_mappings() -> None:
    items = [{"url": "http://example.com/1", "title": "T", "n": 2},
             {"title": "no url"},
             {"link": "http://example.org/x", "url": None}]
    entries = list(iter_entries(items, keep_columns=("title", "n")))
    assert summary(entries) == [(1, "http://example.com/1", None), (2, None, "no 'url' key"),
                                (3, None, "no 'url' key")]
    assert entries[0].columns == {"title": "T", "n": "2"}
    assert entries[1].columns == {"title": "no url", "n": ""}
    assert summary(iter_entries(items[2:], url_key="link")) == [(1, "http://example.org/x", None)]


def test_iterable_of_wrong_type() -> None:
    with pytest.raises(TypeError):
        list(iter_entries([b"http://example.com/"]))


def test_laziness_with_a_huge_generator() -> None:
    consumed = []

    def urls():
        for i in itertools.count():
            consumed.append(i)
            if i >= 10**6:
                raise AssertionError("consumed everything")
            yield f"http://example.com/{i}.jpg"

    first = list(itertools.islice(iter_entries(urls()), 3))
    assert [e.url for e in first] == [f"http://example.com/{i}.jpg" for i in range(3)]
    assert len(consumed) == 3


def test_file_is_streamed_not_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"http://example.com/x.jpg\n" * 400_000  # ~10 MB
    fake = FakeStdin(data)
    monkeypatch.setattr(sys, "stdin", fake)
    entries = open_entries("-")
    assert next(entries).line == 1
    assert fake.buffer.tell() < 100_000
    entries.close()
