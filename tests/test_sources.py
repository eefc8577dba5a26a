"""Unit tests for imgfetch.sources (URL list reading and URL normalisation)."""
from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import sys
import tracemalloc
from pathlib import Path

import pytest

from imgfetch.errors import InputError
from imgfetch.sources import readers
from imgfetch.sources import INPUT_FORMATS, Entry, iter_entries, open_entries
from imgfetch.errors import InvalidURL
from imgfetch.urls import SECRET_PARAMS, mask_url, normalize_url, url_key


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


# --------------------------------------------------------------------------- URLs

@pytest.mark.parametrize("raw, expected", [
    ("http://bücher.example/ä b.jpg", "http://xn--bcher-kva.example/%C3%A4%20b.jpg"),
    ("HTTP://Example.COM/Path/A.JPG", "http://example.com/Path/A.JPG"),
    ("  https://example.org  ", "https://example.org/"),
    ("http://example.com:80/a", "http://example.com/a"),
    ("https://example.com:443/a", "https://example.com/a"),
    ("http://example.com:443/a", "http://example.com:443/a"),
    ("https://example.com:8443/a", "https://example.com:8443/a"),
    ("http://example.com/a#frag", "http://example.com/a"),
    ("http://example.com/a?q=1 2&b=ü#f", "http://example.com/a?q=1%202&b=%C3%BC"),
    ("http://example.com/a%20b%2fc", "http://example.com/a%20b%2Fc"),
    ("http://example.com/100%", "http://example.com/100%25"),
    ("http://example.com/a\\b", "http://example.com/a%5Cb"),
    ("http://example.com/a\x00b\tc", "http://example.com/a%00b%09c"),
    ("http://example.com/!$&'()*+,;=:@~-._", "http://example.com/!$&'()*+,;=:@~-._"),
    ("http://example.com/a/./b/../c", "http://example.com/a/c"),
    ("http://user:p%40ss@example.com/", "http://user:p%40ss@example.com/"),
    ("http://user:pa ss@Example.com/", "http://user:pa%20ss@example.com/"),
    ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    ("http://[2001:DB8:0:0::1]/", "http://[2001:db8::1]/"),
    ("http://192.0.2.1/x", "http://192.0.2.1/x"),
    ("http://example.com?x", "http://example.com/?x"),
    ("https://ÉXAMPLE.test/", "https://xn--xample-9ua.test/"),
    ("http://faß.de/", "http://xn--fa-hia.de/"),          # UTS-46 like browsers, not IDNA 2003's "fass.de"
    ("http://FAß.DE./a", "http://xn--fa-hia.de./a"),
    ("http://☃.net/", "http://xn--n3h.net/"),             # symbols: IDNA 2003 still, as browsers resolve them
])
def test_normalize_url(raw: str, expected: str) -> None:
    assert normalize_url(raw) == expected
    assert normalize_url(expected) == expected  # idempotent


@pytest.mark.parametrize("raw, reason", [
    ("ftp://example.com/a.jpg", "unsupported scheme 'ftp' (only http and https)"),
    ("file:///etc/passwd", "unsupported scheme 'file' (only http and https)"),
    ("javascript:alert(1)", "unsupported scheme 'javascript' (only http and https)"),
    ("data:image/png;base64,AAAA", "unsupported scheme 'data' (only http and https)"),
    ("FTP://example.com/", "unsupported scheme 'ftp' (only http and https)"),
    ("just some text", "not a URL"),
    ("example.com/a.jpg", "not a URL"),
    ("example.com:8080/a.jpg", "not a URL"),
    ("", "empty URL"),
    ("http://", "no host in URL"),
    ("http:///", "no host in URL"),
    ("http://user@/x", "no host in URL"),
    ("http://example.com:0/", "bad port"),
    ("http://example.com:65536/", "bad port"),
    ("http://example.com:http/", "bad port"),
    ("http://exa mple.com/", "bad host name"),
    ("http://a..example/", "bad host name"),
    ("http://" + "a" * 64 + ".example/", "bad host name"),
    ("http://ex<ample.com/", "bad host name"),
    ("http://[::zz]/", "bad host name"),
    ("http://300.1.2.3/", "bad host name"),
    ("http://" + "\u0660" * 60_000 + ".example/", "bad host name '\u0660"),  # refused before IDNA runs
])
def test_normalize_url_rejects(raw: str, reason: str) -> None:
    with pytest.raises(InvalidURL) as info:
        normalize_url(raw)
    assert str(info.value).startswith(reason)
    assert isinstance(info.value, ValueError)


def test_equivalent_urls_normalise_to_the_same_string() -> None:
    variants = ["http://example.com/a.jpg", "HTTP://EXAMPLE.COM/a.jpg",
                "http://example.com:80/a.jpg", "http://example.com/a.jpg#top"]
    assert {normalize_url(v) for v in variants} == {"http://example.com/a.jpg"}
    assert normalize_url("http://example.com/A.jpg") != normalize_url("http://example.com/a.jpg")


def test_mask_url() -> None:
    assert mask_url("https://user:secret@example.com/a?b") == "https://user:***@example.com/a?b"
    assert mask_url("https://user@example.com/a") == "https://user@example.com/a"
    assert mask_url("https://example.com/a:b@c") == "https://example.com/a:b@c"
    assert mask_url("not a url") == "not a url"


def test_mask_url_hides_secret_query_parameters() -> None:
    signed = ("https://b.s3.amazonaws.com/a.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F1"
              "&X-Amz-Security-Token=FwoG&X-Amz-Signature=9f86d0&x-id=GetObject")
    assert mask_url(signed) == ("https://b.s3.amazonaws.com/a.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                                "&X-Amz-Credential=***&X-Amz-Security-Token=***&X-Amz-Signature=***&x-id=GetObject")
    assert mask_url("https://u:pw@example.com/a?TOKEN=t1&tokens=2&key=&Api%5FKey=k#access_token=z") == (
        "https://u:***@example.com/a?TOKEN=***&tokens=2&key=&Api%5FKey=***#access_token=***")
    assert mask_url("https://example.com/a?size=2&sig=s;session=q") == "https://example.com/a?size=2&sig=***;session=***"
    assert {"X-Goog-Signature", "api_key", "sessionid", "password"} <= set(SECRET_PARAMS)
    for name in SECRET_PARAMS:
        assert mask_url(f"http://example.com/?{name.lower()}=v&{name.upper()}=w") == (
            f"http://example.com/?{name.lower()}=***&{name.upper()}=***")


def test_records_and_log_lines_mask_secrets_but_keys_use_the_full_url(server, tmp_path, caplog) -> None:
    import logging

    from imgfetch import download, fetch

    url = server.image_urls()[0] + "?X-Goog-Signature=c2VjcmV0&token=hunter2&w=1"
    masked = server.image_urls()[0] + "?X-Goog-Signature=***&token=***&w=1"
    with caplog.at_level(logging.INFO, logger="imgfetch.pids"):
        result = fetch(url, tmp_path / "one", log_pids=True, progress=False)
    assert result.status == "ok" and result.url == masked and result.key == url_key(url)
    assert masked in caplog.text and "hunter2" not in caplog.text
    [record] = download([url], tmp_path / "pool", workers=1, start_method="fork", progress=False)
    assert record.url == masked and record.key == url_key(url)
    manifest = (tmp_path / "pool" / "manifest.jsonl").read_text()
    assert "hunter2" not in manifest and json.loads(manifest)["url"] == masked


def test_url_key() -> None:
    key = url_key("http://example.com/a.jpg")
    assert len(key) == 32 and all(c in "0123456789abcdef" for c in key)
    assert key == url_key("http://example.com/a.jpg")
    assert key == hashlib.sha256(b"http://example.com/a.jpg").hexdigest()[:32]
    assert key == url_key("HTTP://example.com:80/a.jpg#x")
    assert url_key("http://u:one@example.com/a.jpg") != url_key("http://u:two@example.com/a.jpg")
    assert url_key("http://example.com/b.jpg") != key


# --------------------------------------------------------------------------- bounded lines

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
